"""Probabilities through ONNX Runtime: equal to PyTorch's on real images in every command that uses
them, one exported graph per architecture filled with each model's weights, and PyTorch, with one
line, wherever ONNX Runtime cannot answer."""
from __future__ import annotations

import copy
import csv
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import classifier.evaluation.run_files as run_files
import classifier.inference.probabilities as probabilities
from classifier.cli import classify_cli
from classifier.evaluation.evaluate_external import evaluate_run
from classifier.inference.predict import predict_files
from classifier.inference.probabilities import TOLERANCE, EngineError, ProbabilityEngine, graph_paths
from classifier.inference.runs import load_run_model
from classifier.inference.serve import Service
from cxrdata import CLASSES, CXRDataset, Manifest
from conftest import few

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]
CPU = torch.device("cpu")


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def as_array(predictions) -> np.ndarray:
    return np.array([[p.probabilities[c] for c in CLASSES] for p in predictions])


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_run_model(tiny_run[0], CPU)


@pytest.fixture
def images(tiny_run):
    """The tiny run's real test images, as its model sees them."""
    _, manifest = tiny_run
    test = manifest.select(split="test")
    return torch.stack([image for image, _ in CXRDataset(test, 32, progress=False)])


def test_onnx_runtime_answers_as_pytorch_on_real_images(model, images):
    network, size = model
    engine = ProbabilityEngine(network, size, CPU)
    assert engine.backend == "onnxruntime"
    theirs = engine(images)
    with torch.no_grad():
        ours = network(images).softmax(1).numpy()
    assert np.abs(theirs - ours).max() <= TOLERANCE


def test_one_graph_per_architecture_filled_with_each_models_weights(model, images):
    network, size = model
    changed = copy.deepcopy(network)
    with torch.no_grad():
        changed.head.weight.mul_(-1)  # another model of the same architecture
    template, filled = graph_paths(network, size)
    ProbabilityEngine(network, size, CPU)
    assert template.is_file() and filled.is_file()
    engine = ProbabilityEngine(changed, size, CPU)
    assert graph_paths(changed, size)[0] == template and graph_paths(changed, size)[1] != filled
    with torch.no_grad():
        assert np.abs(engine(images) - changed(images).softmax(1).numpy()).max() <= TOLERANCE


def test_a_cached_graph_is_reused_without_exporting_again(model, images, monkeypatch):
    network, size = model
    ProbabilityEngine(network, size, CPU)
    monkeypatch.setattr(probabilities, "write_template", lambda *a: pytest.fail("exported again"))
    monkeypatch.setattr(probabilities, "filled_graph", lambda *a: pytest.fail("filled again"))
    assert ProbabilityEngine(network, size, CPU).backend == "onnxruntime"


def test_without_onnxruntime_pytorch_answers_and_says_so_in_one_line(model, images, monkeypatch):
    network, size = model
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    said = []
    engine = ProbabilityEngine(network, size, CPU, say=said.append)
    assert engine.backend == "pytorch" and said == ["scoring with PyTorch: onnxruntime is not installed"]
    with torch.no_grad():
        assert np.array_equal(engine(images), network(images).softmax(1).numpy())
    with pytest.raises(EngineError, match="--engine onnxruntime: onnxruntime is not installed"):
        ProbabilityEngine(network, size, CPU, "onnxruntime")


def test_a_graph_that_cannot_be_made_or_answers_otherwise_falls_back_to_pytorch(model, images, monkeypatch):
    network, size = model
    said = []
    monkeypatch.setattr(probabilities, "_session", lambda *a: (_ for _ in ()).throw(RuntimeError("no exporter")))
    assert ProbabilityEngine(network, size, CPU, say=said.append).backend == "pytorch"
    assert said == ["scoring with PyTorch: its graph could not be made (RuntimeError: no exporter)"]

    class Wrong:
        def run(self, names, feed):
            return [np.full((len(feed["image"]), len(CLASSES)), 1 / len(CLASSES), np.float32)]

    monkeypatch.setattr(probabilities, "_session", lambda *a: Wrong())
    said.clear()
    engine = ProbabilityEngine(network, size, CPU, say=said.append)
    answer = engine(images)
    assert engine.backend == "pytorch" and len(said) == 1 and "differ from PyTorch's" in said[0]
    with torch.no_grad():
        assert np.array_equal(answer, network(images).softmax(1).numpy())


def test_an_unknown_engine_is_refused_naming_the_option(tiny_run, cxr3):
    cli = CliRunner().invoke(classify_cli, ["predict", str(cxr3[0].file), "--run", str(tiny_run[0]),
                                            "--engine", "tensorrt"])
    assert cli.exit_code == 2 and "--engine" in cli.output


def test_predict_evaluate_serve_and_the_test_split_agree_across_engines(tiny_run, tmp_path):
    run, manifest = tiny_run
    test = manifest.select(split="test")
    files = [r.file for r in test]
    onnx = list(predict_files(files, run, engine="onnxruntime"))
    torch_ = list(predict_files(files, run, engine="pytorch"))
    assert np.abs(as_array(onnx) - as_array(torch_)).max() <= TOLERANCE
    written = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows(run / "predictions.csv")])
    assert np.abs(written - as_array(torch_)).max() <= TOLERANCE + 5e-7  # the run's own test split (6 decimals)

    evaluations = {engine: evaluate_run(run, run.parent / "tiny.csv", tmp_path / engine, split="test",
                                        engine=engine, progress=False) for engine in ("onnxruntime", "pytorch")}
    assert {e: evaluations[e].metrics["engine"] for e in evaluations} == {"onnxruntime": "onnxruntime",
                                                                          "pytorch": "pytorch"}
    onnx_rows, torch_rows = (rows(evaluations[e].out_dir / "predictions.csv") for e in ("onnxruntime", "pytorch"))
    assert max(abs(float(a[f"p_{c}"]) - float(b[f"p_{c}"])) for a, b in zip(onnx_rows, torch_rows)
               for c in CLASSES) <= TOLERANCE + 1e-6

    service = Service(run)
    assert service.predictor.engine.backend == "onnxruntime"
    served = service.analyse(files[0].read_bytes(), "x.png")["probabilities"]
    assert max(abs(served[c] - torch_[0].probabilities[c]) for c in CLASSES) <= TOLERANCE


def test_predict_writes_an_overlay_only_when_asked(tiny_run, tmp_path):
    run, manifest = tiny_run
    file = str(few(manifest, "test", 1)[0].file)
    plain = CliRunner().invoke(classify_cli, ["predict", file, "--run", str(run), "--out", str(tmp_path / "plain"),
                                              "--csv", str(tmp_path / "plain.csv")])
    assert plain.exit_code == 0, plain.output
    assert "CAM" not in plain.output and not (tmp_path / "plain").exists()
    row, = rows(tmp_path / "plain.csv")
    assert row["overlay"] == row["cam_class"] == row["border_share"] == ""
    explained = CliRunner().invoke(classify_cli, ["predict", file, "--run", str(run), "--out", str(tmp_path / "cam"),
                                                  "--cam"])
    assert explained.exit_code == 0 and "CAM for" in explained.output
    assert len(list((tmp_path / "cam").glob("*.png"))) == 1


def test_evaluate_writes_overlays_for_the_grids_unless_asked_for_every_image(tiny_run, small_corpus, tmp_path,
                                                                            monkeypatch):
    run, _ = tiny_run
    data = tmp_path / "data.csv"
    Manifest(small_corpus.records, name="paediatric").write(data)
    monkeypatch.setattr(run_files, "GRID_SIZE", 2)  # 2 of the (up to) 4 images of each class in a grid
    grids = evaluate_run(run, data, tmp_path / "grids", progress=False)
    every = evaluate_run(run, data, tmp_path / "every", every_overlay=True, progress=False)
    overlays = {name: sorted(p.name for p in (e.out_dir / "gradcam" / "overlays").glob("*.png"))
                for name, e in (("grids", grids), ("every", every))}
    per_class = [sum(r.label == c for r in small_corpus) for c in CLASSES]
    assert len(overlays["every"]) == len(small_corpus) and len(overlays["grids"]) == sum(min(2, n) for n in per_class)
    assert set(overlays["grids"]) < set(overlays["every"])
    assert grids.metrics["gradcam"]["mean_border_share"] == every.metrics["gradcam"]["mean_border_share"]
