"""Integration: a tiny v2 run on real images writes every output, resumes exactly, refuses to
overwrite, and its model classifies files (skipping unreadable ones)."""
from __future__ import annotations

import csv
import json
import shutil

import pytest
import timm
import torch
from click.testing import CliRunner

from classifier.cli import classify_cli
from classifier.config import make_config
from classifier.model.backbones import build_model
from classifier.model.checkpoints import CheckpointMismatchError, load_weights
from classifier.inference.predict import predict_files
from classifier.inference.runs import RunNotUsableError
from classifier.training.train import train_classifier
from conftest import few
from cxrdata import CLASSES, ImageReadError
from runkit import checkpoint
from runkit.pretrained import LITE0_PACKAGE, LITE0_SHA256
from runkit.rundir import RunExistsError, is_finished
from helpers import make_synthetic, single_thread

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]

COLUMNS = "image_id,path,patient_id,source,true,predicted,p_normal,p_covid,p_pneumonia"


@pytest.fixture(scope="module")
def tiny(cxr3, tmp_path_factory):
    """A 4/2/3-per-class real manifest and a 2-image synthetic manifest."""
    folder = tmp_path_factory.mktemp("tiny")
    manifest = few(cxr3, "train", 4) + few(cxr3, "val", 2) + few(cxr3, "test", 3)
    manifest.write(folder / "tiny.csv", ["image_id"])
    synth = make_synthetic(folder / "synthetic", cxr3, 2)
    settings = dict(dataset=str(folder / "tiny.csv"), aug="v2", synth_manifest=str(synth),
                    image_size=48, batch_size=4, seed=7, head_epochs=2)  # the resume crosses head → fine-tune
    return settings, manifest


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    """The tiny v2 run trained 3 epochs straight, and 2 epochs (to be resumed), on one thread as the
    tests that resume it (a module fixture is made before the function fixture one_thread)."""
    settings, _ = tiny
    folder = tmp_path_factory.mktemp("runs")
    with single_thread():
        straight = train_classifier(make_config(epochs=3, **settings), folder / "straight")  # with progress
        return straight, train_classifier(make_config(epochs=2, **settings), folder / "run", progress=False)


def test_a_tiny_v2_run_writes_every_output(tiny, runs):
    _, manifest = tiny
    _, run = runs
    for name in ("config.json", "best.pt", "last.pt", "train_images.csv", "metrics.json", "report.md",
                 "confusion.png", "predictions.csv", "gradcam.json", "finished.json"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*")), "no TensorBoard scalars"
    trained = read_rows(run / "train_images.csv")
    assert len(trained) == 12 + 2 and sum(r["source"] == "synthetic" for r in trained) == 2

    rows = read_rows(run / "predictions.csv")
    assert (run / "predictions.csv").read_text().splitlines()[0] == COLUMNS
    test = manifest.select(split="test")
    assert [r["path"] for r in rows] == [r.path for r in test]
    assert [r["image_id"] for r in rows] == [r.extra["image_id"] for r in test]
    assert [r["true"] for r in rows] == [r.label for r in test]
    probabilities = torch.tensor([[float(r[f"p_{c}"]) for c in ("normal", "covid", "pneumonia")] for r in rows])
    torch.testing.assert_close(probabilities.sum(1), torch.ones(len(rows)), atol=1e-5, rtol=0)

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["n"] == 9
    assert metrics["test"]["correct"] == sum(r["true"] == r["predicted"] for r in rows)
    assert metrics["synthetic_train_images"] == 2
    assert metrics["class_balance"]["train"] == {"normal": 4, "covid": 6, "pneumonia": 4}
    low, high = metrics["test"]["accuracy_ci95"]
    assert low <= metrics["test"]["accuracy"] <= high
    cams = json.loads((run / "gradcam.json").read_text())
    assert len(cams["images"]) == 9 and 0 <= cams["mean_border_share"] <= 1
    assert [c["cam_class"] for c in cams["images"]] == [r["predicted"] for r in rows]
    assert len(list((run / "gradcam" / "overlays").glob("*.png"))) == 9
    assert {p.name for p in (run / "gradcam").glob("grid_*.png")} == {
        "grid_normal.png", "grid_covid.png", "grid_pneumonia.png"}
    assert "Test accuracy" in (run / "report.md").read_text()
    last = checkpoint.load(run / "last.pt")
    assert last["epoch"] == 1 and {"optimizer", "rng", "history"} <= last.keys()


def test_a_finished_run_is_neither_overwritten_nor_resumed_with_other_settings(tiny, runs):
    settings, _ = tiny
    _, run = runs
    with pytest.raises(RunExistsError, match="--resume"):
        train_classifier(make_config(epochs=2, **settings), run, progress=False)
    with pytest.raises(RunExistsError, match="different settings"):
        train_classifier(make_config(epochs=3, **{**settings, "seed": 8}), run, resume=True, progress=False)


def test_a_resumed_run_equals_one_trained_straight(tiny, runs, tmp_path):
    settings, _ = tiny
    straight, run = runs
    resumed = shutil.copytree(run, tmp_path / "resumed")  # the fixture's run stays at 2 epochs
    train_classifier(make_config(epochs=3, **settings), resumed, resume=True, progress=False)
    assert is_finished(resumed) and checkpoint.load(resumed / "last.pt")["epoch"] == 2
    # 2 epochs + 1 resumed epoch = 3 straight epochs, bit for bit (seeded CPU run, RNG restored)
    ours, whole = checkpoint.load(resumed / "last.pt")["model"], checkpoint.load(straight / "last.pt")["model"]
    assert all(torch.equal(ours[k], whole[k]) for k in whole)
    assert read_rows(resumed / "predictions.csv") == read_rows(straight / "predictions.csv")


def test_a_checkpoint_refuses_another_backbone(runs):
    _, run = runs
    with pytest.raises(CheckpointMismatchError, match="efficientnet_lite0"):
        load_weights(build_model("resnet50"), checkpoint.load(run / "best.pt"), run / "best.pt")


def test_predict_answers_as_the_test_split_and_skips_an_unreadable_file(tiny, runs, tmp_path):
    _, manifest = tiny
    _, run = runs
    test = manifest.select(split="test")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    files = [test[0].file, broken, test[5].file]
    results = list(predict_files(files, run, tmp_path / "out"))
    assert isinstance(results[1], ImageReadError) and "broken.png" in str(results[1])
    rows = read_rows(run / "predictions.csv")
    for result, file, row in [(results[0], files[0], rows[0]), (results[2], files[2], rows[5])]:
        assert result.file == file and result.predicted == row["predicted"]
        # the same engine on the same machine: equal but for the CSV's 6 decimals
        assert all(abs(result.probabilities[c] - float(row[f"p_{c}"])) <= 5e-7 for c in CLASSES)
        assert result.overlay is None and result.cam_class is None  # no Grad-CAM unless asked
    assert not (tmp_path / "out").exists()
    explained = list(predict_files(files[:1], run, tmp_path / "out", cam_class="predicted"))[0]
    assert explained.overlay.is_file() and explained.cam_class == results[0].predicted
    assert explained.probabilities == results[0].probabilities


def test_the_predict_command_names_an_unreadable_file_and_fails(tiny, runs, tmp_path):
    _, manifest = tiny
    _, run = runs
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    cli = CliRunner().invoke(classify_cli, ["predict", str(manifest.select(split="test")[0].file), str(broken),
                                            "--run", str(run), "--out", str(tmp_path / "cli"), "--cam-class", "covid"])
    assert cli.exit_code == 1
    assert "broken.png" in cli.output and "CAM for covid" in cli.output


def test_a_run_names_the_exact_weights_it_started_from_and_refuses_others(tiny, tmp_path):
    settings, _ = tiny
    run = train_classifier(make_config(epochs=1, **settings), tmp_path / "run", progress=False)
    started = json.loads((run / "config.json").read_text())["runtime"]["weights"]
    assert started == {"weights": "imagenet", "source": LITE0_PACKAGE, "file": started["file"],
                       "sha256": LITE0_SHA256, "architecture": "timm tf_efficientnet_lite0",
                       "timm": timm.__version__}
    assert checkpoint.load(run / "best.pt")["initial_weights"] == started
    assert LITE0_SHA256[:16] in (run / "report.md").read_text()
    assert LITE0_SHA256[:16] in (run / "MODEL_CARD.md").read_text()

    config = json.loads((run / "config.json").read_text())
    config["runtime"]["weights"]["sha256"] = "0" * 64  # as if trained from another file
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunExistsError, match="trained from .*0000000000000000"):
        train_classifier(make_config(epochs=2, **settings), run, resume=True, progress=False)
    with pytest.raises(RunNotUsableError, match="the file is from another run"):
        next(predict_files([few(tiny[1], "test", 1)[0].file], run, tmp_path / "out"))


def test_v2_without_synthetic_data_fails_before_creating_the_run(tiny, tmp_path):
    settings, _ = tiny
    config = make_config(**{**settings, "synth_manifest": str(tmp_path / "none.csv")})
    cli = CliRunner().invoke(classify_cli, ["train", "--dataset", settings["dataset"], "--aug", "v2",
                                            "--synth", str(tmp_path / "none.csv"),
                                            "--out", str(tmp_path / "run")])
    assert cli.exit_code == 1 and "make synth N=100" in cli.output
    assert not (tmp_path / "run").exists()
    assert config.aug == "v2"


def test_unavailable_imagenet_weights_fail_before_creating_the_run(tiny, tmp_path, monkeypatch):
    import urllib.error

    import classifier.model.backbones as models

    def offline(name, weights=None):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(models, "get_model", offline)
    settings, _ = tiny
    with pytest.raises(models.WeightsError, match="place it at"):
        train_classifier(make_config(**{**settings, "backbone": "resnet18", "weights": "imagenet"}), tmp_path / "run",
                         progress=False)
    assert not (tmp_path / "run").exists()
