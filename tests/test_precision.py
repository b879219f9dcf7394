"""--precision fp32 | bf16 | auto: what each means per device, that bf16 really computes in bf16,
and that runs record what they used."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from classifier.cli import classify_cli
from classifier.config import ConfigError, make_config
from conftest import few
from cyclegan.cli import gan_cli
from cyclegan.config import from_profile
from cyclegan.model import CycleGAN
from runkit import device as devices

CPU = torch.device("cpu")
native = pytest.mark.skipif(devices.native_bf16() is None, reason="this CPU has no native bf16")


def test_what_each_precision_means_on_a_cpu(monkeypatch):
    assert devices.amp_dtype(CPU, "fp32") is None
    auto = torch.bfloat16 if devices.AUTO_CPU_BF16 and devices.native_bf16() else None
    assert devices.amp_dtype(CPU, "auto") is auto
    with pytest.raises(devices.DeviceError, match="--precision fp8: choose one of auto, fp32, bf16"):
        devices.amp_dtype(CPU, "fp8")
    monkeypatch.setattr(devices, "native_bf16", lambda: None)
    with pytest.raises(devices.DeviceError, match="--precision bf16: this CPU computes bf16 only by emulation"):
        devices.amp_dtype(CPU, "bf16")
    assert devices.precision_record(CPU, "fp32") == {"precision": "fp32", "cpu_bf16": None}
    monkeypatch.setattr(devices, "native_bf16", lambda: "AMX")
    assert devices.amp_dtype(CPU, "bf16") is torch.bfloat16
    assert devices.precision_record(CPU, "bf16") == {"precision": "bf16", "cpu_bf16": "AMX"}


@native
@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_a_cyclegan_step_computes_in_the_chosen_precision(precision, dtype, one_thread):
    torch.manual_seed(0)
    model = CycleGAN(from_profile("cpu", image_size=32, ngf=8, n_blocks=2, ndf=8, precision=precision), CPU)
    seen = []
    model.G_A.model[1].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    losses = model.step(torch.rand(1, 1, 32, 32) * 2 - 1, torch.rand(1, 1, 32, 32) * 2 - 1)
    assert seen and set(seen) == {dtype}
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in model.G_A.parameters())  # weights stay fp32


@native
def test_runs_record_the_precision_they_used_and_may_resume_with_another(cxr3, tmp_path, one_thread):
    manifest = tmp_path / "tiny.csv"
    (few(cxr3, "train", 3) + few(cxr3, "val", 1) + few(cxr3, "test", 1)).write(manifest)
    args = ["--out", str(tmp_path / "gan"), "--dataset", str(manifest), "--image-size", "32", "--ngf", "8",
            "--n-blocks", "2", "--ndf", "8", "--n-samples", "1", "--quiet"]
    result = CliRunner().invoke(gan_cli, ["train", *args, "--iterations", "2", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "gan" / "config.json").read_text())
    assert record["precision"] == "bf16"
    assert record["runtime"] == {"precision": "bf16", "cpu_bf16": devices.native_bf16()}
    result = CliRunner().invoke(gan_cli, ["train", *args, "--iterations", "3", "--precision", "fp32", "--resume"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "gan" / "config.json").read_text())["runtime"]["precision"] == "fp32"


def test_bad_precisions_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        make_config("cpu", precision="fp8")
    result = CliRunner().invoke(classify_cli, ["train", "--precision", "fp8", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "'fp8' is not one of 'auto', 'fp32', 'bf16'" in result.output
    result = CliRunner().invoke(gan_cli, ["train", "--precision", "fp8", "--out", str(tmp_path / "g")])
    assert result.exit_code == 1 and "precision must be one of auto, fp32, bf16, got 'fp8'" in result.output
    assert not (tmp_path / "g").exists() and not (tmp_path / "c").exists()


@native
def test_the_precision_check_tables_both_precisions_over_seeds(cxr3, tmp_path, monkeypatch, one_thread):
    from pipelines.studies.precision import run_precision_check

    manifest = tmp_path / "tiny.csv"
    (few(cxr3, "train", 3) + few(cxr3, "val", 1) + few(cxr3, "test", 1)).write(manifest)
    settings = {"manifest": str(manifest), "size": 32, "ngf": 8, "n_blocks": 2, "ndf": 8, "iterations": 4,
                "log_every": 1, "n_samples": 1}
    path = run_precision_check((0, 1), tmp_path / "check", settings, n_synthetic=2, progress=False, log=lambda m: None)
    rows = json.loads((tmp_path / "check" / "results.json").read_text())
    assert [(r["precision"], r["seed"]) for r in rows] == [("fp32", 0), ("fp32", 1), ("bf16", 0), ("bf16", 1)]
    config = json.loads((tmp_path / "check" / "gan-bf16-seed1" / "config.json").read_text())
    assert config["runtime"]["precision"] == "bf16"
    lines = path.read_text().splitlines()
    loss = next(line for line in lines if line.startswith("| loss G_A |"))
    fp32 = [r["loss G_A"] for r in rows if r["precision"] == "fp32"]
    bf16 = sum(r["loss G_A"] for r in rows if r["precision"] == "bf16") / 2
    assert loss.endswith("| yes |" if min(fp32) <= bf16 <= max(fp32) else "| **no** |")
    assert sum(line.startswith("| synthetic:") for line in lines) == 3
