"""`gpu-check` on CPU: every step runs at tiny sizes with only what a GPU machine's own Python has
(no pooch, FastAPI, pydicom …), its data folder travels, and the reference CycleGAN is timed as
a process (a stand-in checkout here)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from classifier.model.registry import BACKBONES

from cxrdata import Manifest
from fake_reference import fake_reference
from pipelines.perf.gpucheck import prepare_data
from pipelines.perf.reference import ReferenceCheckoutError, check_checkout, reference_seconds

pytestmark = pytest.mark.integration
ABSENT_THERE = ("pooch", "fastapi", "uvicorn", "multipart", "python_multipart", "pydicom", "selenium", "httpx",
                "starlette")
LAUNCH = ("import runpy, sys\nfor name in {absent!r}:\n    sys.modules[name] = None  # import raises ImportError\n"
          "sys.argv = ['pipelines.perf.gpucheck', *{args!r}]\n"
          "runpy.run_module('pipelines.perf.gpucheck', run_name='__main__')\n")


def test_the_quick_check_runs_every_step_without_this_projects_installs(tmp_path):
    out = tmp_path / "check"
    args = ["run", "--quick", "--out", str(out), "--reference", str(fake_reference(tmp_path / "reference"))]
    done = subprocess.run([sys.executable, "-c", LAUNCH.format(absent=ABSENT_THERE, args=args)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "gpu-check.json").read_text())
    assert list(result["steps"]) == ["cuda_checks", "gan_speed", "gan_training", "classifier_speed"]
    assert all(s["seconds"] >= 0 for s in result["steps"].values())
    checks = result["steps"]["cuda_checks"]["result"]
    assert "skipped" in checks and "no CUDA device" in checks["skipped"]
    speed = result["steps"]["gan_speed"]["result"]
    assert {r["batch"] for r in speed if r["precision"] == "fp32" and r["arch"] == "cpu"} == {1, 2}
    assert all(r["seconds_per_iteration"] > 0 and r["images_per_s"] > 0 for r in speed)
    assert [r["seconds_per_iteration"] for r in speed if r["arch"] == "reference cpu"] == [0.5]  # the stand-in's
    training = result["steps"]["gan_training"]["result"]
    assert training["iterations"] >= 2 and training["projected_5000_iterations_minutes"] > 0
    assert (out / "gan-samples.png").stat().st_size > 0
    rates = result["steps"]["classifier_speed"]["result"]
    assert set(rates) == set(BACKBONES)  # timm's too, timm being installed here
    assert all(r["train_images_per_s"] > 0 and r["gradcam_ms_per_image"] > 0 for r in rates.values())
    table = (out / "gpu-check.md").read_text()
    for heading in ("## CUDA checks", "## CycleGAN speed", "## CycleGAN training", "## Classifier backbones"):
        assert heading in table


def test_the_data_folder_fits_the_carry_limit_and_reads_wherever_it_is_moved(corpus, tmp_path):
    folder = prepare_data(tmp_path / "data")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size <= 40 * 2**20, f"{size / 2**20:.1f} MiB"
    moved = shutil.move(str(folder), str(tmp_path / "elsewhere"))
    manifest = Manifest.read(f"{moved}/manifest.csv")  # its sidecar's root is the folder itself
    assert len(manifest.select(split="train")) == 300 and all(r.file.is_file() for r in manifest)
    assert {r.split for r in manifest} == {"train", "val", "test"}


def test_the_reference_runs_as_a_process_and_a_wrong_checkout_is_named(tmp_path):
    seconds = reference_seconds(fake_reference(tmp_path / "reference"), "paper", 32, iterations=3, warmup=1)
    assert seconds["all"] == [0.5, 0.75, 1.0] and seconds["median"] == 0.75  # the warm-up line is dropped
    with pytest.raises(ReferenceCheckoutError, match="not a pytorch-CycleGAN-and-pix2pix checkout"):
        check_checkout(tmp_path)
