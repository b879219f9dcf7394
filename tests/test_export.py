"""Export to ONNX and safetensors with the model card: every backbone, a real run end to end,
a wrong export caught, and bad requests refused in one line."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from classifier.cli import classify_cli
from classifier.inference.export import (ExportError, check_onnx, export_run, write_onnx,
                                         write_safetensors)
from classifier.model.backbones import build_model
from classifier.model.registry import BACKBONES
from classifier.inference.predict import predict_files
from classifier.inference.runs import RunNotUsableError, load_exported
from cxrdata.manifest import sha256_of

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.integration
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_backbone_exports_and_onnx_runtime_equals_it(backbone, tmp_path):
    torch.manual_seed(0)
    model = build_model(backbone, "none", equalize=backbone == "resnet18", head="mlp64").eval()
    write_onnx(model, 32, tmp_path / "model.onnx")
    images = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    assert check_onnx(tmp_path / "model.onnx", model, {"image": images})["checked"]
    write_safetensors(model, tmp_path / "model.safetensors")
    again = load_exported(tmp_path, {"backbone": backbone, "head": "mlp64", "equalize": backbone == "resnet18"}).eval()
    with torch.no_grad():
        assert torch.equal(again(torch.from_numpy(images)), model(torch.from_numpy(images)))


def test_a_wrong_export_is_caught(tmp_path):
    model = build_model("resnet18", "none").eval()
    write_onnx(model, 32, tmp_path / "model.onnx")
    with torch.no_grad():
        model.input.std.mul_(2)  # as if the export had lost the input normalisation
    images = np.random.default_rng(1).random((4, 1, 32, 32), dtype=np.float32)
    with pytest.raises(ExportError, match="ONNX Runtime's probabilities differ from the model's .* export is wrong"):
        check_onnx(tmp_path / "model.onnx", model, {"image": images})


@pytest.mark.integration
def test_a_real_run_exports_with_its_card_and_the_export_predicts_and_serves_like_the_run(tiny_run, cxr3, tmp_path):
    from fastapi.testclient import TestClient

    from classifier.inference.serve import create_app

    run, manifest = tiny_run
    result = CliRunner().invoke(classify_cli, ["export", "--run", str(run), "--out", str(tmp_path / "export")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "export"
    checks = json.loads((out / "checks.json").read_text())["onnx"]
    assert checks["checked"] and checks["images"] == len(manifest.select(split="test"))
    card = (out / "MODEL_CARD.md").read_text()
    for name in ("model.onnx", "model.safetensors", "config.json", "preprocess.json", "example.py"):
        assert f"| {name} | `{sha256_of(out / name)}` |" in card
    assert "Not for diagnosis" in card and "## Known limitation: image source" in card and "![grid_" in card
    assert [p.name for p in tmp_path.glob(".export.*")] == [".export.lock"]  # no staging left; the lock stays
    assert (run / "MODEL_CARD.md").is_file()  # written beside every finished run too
    files = [r.file for r in manifest.select(split="test")][:3]
    for ours, theirs in zip(predict_files(files, run, tmp_path / "a"), predict_files(files, out, tmp_path / "b")):
        assert ours.probabilities == pytest.approx(theirs.probabilities, abs=1e-6)
    response = TestClient(create_app(out)).post(
        "/api/predict", files=[("files", ("x.png", files[0].read_bytes(), "image/png"))])
    assert response.status_code == 200


@pytest.mark.integration
def test_bad_requests_are_one_line(tiny_run, tmp_path, monkeypatch):
    run, _ = tiny_run
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "finished.json").unlink()
    with pytest.raises(RunNotUsableError, match="has not finished"):
        export_run(unfinished, tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunNotUsableError, match="not a classifier run"):
        export_run(tmp_path / "empty", tmp_path / "x")
    with pytest.raises(ExportError, match="--format 'onnx,tflite': choose from onnx, safetensors"):
        export_run(run, tmp_path / "x", ("onnx", "tflite"))
    (tmp_path / "taken").mkdir()
    with pytest.raises(ExportError, match="already holds an export; pass --overwrite"):
        export_run(run, tmp_path / "taken", ("safetensors",))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = export_run(run, tmp_path / "no-ort", ("onnx",))
    assert (out / "model.onnx").is_file() and not (out / "model.safetensors").exists()
    assert "onnxruntime is not installed" in json.loads((out / "checks.json").read_text())["onnx"]["why"]
    assert "ONNX check skipped: onnxruntime is not installed" in (out / "MODEL_CARD.md").read_text()
