"""Renamed settings: a run folder written before a rename is still read, resumed and reused.

``data/legacy/gan-config.json`` is the ``config.json`` of the demo's CycleGAN run as the code wrote
it before ``manifest`` → ``dataset`` and ``size`` → ``image_size`` (runs/compare/demo/gan, 2026-12-03).
"""
import json
import shutil
from pathlib import Path

import pytest

from cyclegan.config import GANConfig, from_profile
from pipelines.experiment.steps import ensure
from runkit.rundir import CONFIG, FINISHED, RunExistsError, current_names, open_run, settings, write_json

LEGACY = Path(__file__).parent / "data" / "legacy" / "gan-config.json"


def legacy_run(tmp_path: Path, finished: bool) -> Path:
    run = tmp_path / "gan"
    run.mkdir()
    shutil.copy(LEGACY, run / CONFIG)
    if finished:
        write_json(run / FINISHED, {})
    return run


def test_old_names_read_under_new_ones():
    old = json.loads(LEGACY.read_text())
    assert {"manifest", "size"} <= set(old) and not {"dataset", "image_size"} & set(old)
    config = GANConfig.from_dict(old)
    assert config == from_profile("cpu") and (config.dataset, config.image_size) == ("cxr3", 96)
    assert from_profile("cpu", size=64, manifest="makris2020") == from_profile("cpu", image_size=64,
                                                                               dataset="makris2020")


def test_both_names_refused():
    with pytest.raises(ValueError, match="size and image_size"):
        current_names({"size": 64, "image_size": 96})
    with pytest.raises(ValueError, match="size and image_size"):
        from_profile("cpu", size=64, image_size=96)


def test_finished_old_run_is_reused(tmp_path):
    run = legacy_run(tmp_path, finished=True)

    def never(*args, **kwargs):
        raise AssertionError("the finished run was trained again")

    assert ensure(run, from_profile("cpu").to_dict(), never) == (run, "reused")
    with pytest.raises(RunExistsError, match="other settings"):
        ensure(run, from_profile("cpu", image_size=64).to_dict(), never)


def test_unfinished_old_run_resumes(tmp_path):
    run = legacy_run(tmp_path, finished=False)
    calls = []
    assert ensure(run, from_profile("cpu").to_dict(), lambda d, **kw: calls.append(kw)) == (run, "resumed")
    assert calls == [{"resume": True, "overwrite": False}]
    open_run(run, {**from_profile("cpu").to_dict(), "runtime": {}}, resume=True)  # the trainer's own check
    assert settings(json.loads((run / CONFIG).read_text())) == from_profile("cpu").to_dict()
    with pytest.raises(RunExistsError, match="image_size: 96 → 64"):
        open_run(run, from_profile("cpu", image_size=64).to_dict(), resume=True)
