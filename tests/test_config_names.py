"""Renamed settings: a run folder written before a rename is still read, resumed and reused.

``data/legacy/gan-config.json`` is the ``config.json`` of the demo's CycleGAN run as the code wrote
it before ``manifest`` → ``dataset`` and ``size`` → ``image_size`` (runs/compare/demo/gan, 2026-12-03).
"""
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

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


class Captured(Exception):
    """Raised by a stand-in trainer to hand back the config it was given."""


def capture(config, *args, **kwargs):
    raise Captured(config)


def test_gan_train_starts_from_a_runs_config(monkeypatch, tmp_path):
    from cyclegan import cli as gan_cli_module
    from cyclegan.config import from_run

    assert from_run(LEGACY) == from_profile("cpu")
    assert from_run(LEGACY, iterations=5, seed=None) == from_profile("cpu", iterations=5)
    monkeypatch.setattr(gan_cli_module, "train", capture)
    result = CliRunner().invoke(gan_cli_module.gan_cli, ["train", "--config", str(LEGACY), "--iterations", "5",
                                                         "--out", str(tmp_path / "new")])
    assert isinstance(result.exception, Captured) and result.exception.args[0] == from_profile("cpu", iterations=5)
    both = CliRunner().invoke(gan_cli_module.gan_cli, ["train", "--config", str(LEGACY), "--profile", "cpu"])
    assert both.exit_code == 2 and "pass --profile or --config, not both" in both.output


def test_classify_train_starts_from_a_runs_config(monkeypatch, tmp_path):
    from classifier.cli import classify_cli
    from classifier.config import ConfigError, from_run, make_config
    from classifier.training import train

    finished = make_config("cpu", dataset="elsewhere.csv", epochs=2, zoom=0.1, hide_lungs=True)
    write_json(tmp_path / CONFIG, {**finished.to_dict(), "runtime": {"precision": "fp32"}})
    assert from_run(tmp_path / CONFIG) == finished
    assert from_run(tmp_path / CONFIG, epochs=3) == make_config("cpu", dataset="elsewhere.csv", epochs=3, zoom=0.1,
                                                                hide_lungs=True)
    monkeypatch.setattr(train, "train_classifier", capture)
    result = CliRunner().invoke(classify_cli, ["train", "--config", str(tmp_path / CONFIG), "--epochs", "3"])
    assert isinstance(result.exception, Captured) and result.exception.args[0] == from_run(tmp_path / CONFIG, epochs=3)
    with pytest.raises(ConfigError, match=r"gan-config.json: unknown setting\(s\) beta1"):
        from_run(LEGACY)  # a CycleGAN's settings are not a classifier's
