"""Integration: a classifier that sees only the lungs sees only them in training, testing and
predict; its setting travels with the checkpoint; inputs without lungs are flagged in one line."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from classifier.config import make_config
from classifier.inference.export import export_run
from classifier.inference.input_gate import checker_for_run
from classifier.inference.predict import Predictor, predict_files
from classifier.inference.runs import known_patients
from classifier.model.backbones import build_model
from classifier.model.checkpoints import CheckpointMismatchError, load_weights
from classifier.training.train import train_classifier
from conftest import few
from cxrdata import CXRDataset, read_grayscale
from cxrdata.images import fit_square
from cxrdata.lungs.cache import fitted_masks
from cxrdata.lungs.inputs import lungs_of
from cxrdata.lungs.regions import apply_region
from cxrdata.lungs.segmenter import default_segmenter
from runkit import checkpoint
from runkit.rundir import read_json, sha256_of

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]
SIZE = 48


@pytest.fixture(scope="module")
def lungs_only_run(cxr3, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lungs-only")
    manifest = few(cxr3, "train", 3) + few(cxr3, "val", 1) + few(cxr3, "test", 2)
    manifest.write(folder / "tiny.csv", ["image_id"])
    config = make_config(dataset=str(folder / "tiny.csv"), region="lungs-only", image_size=SIZE, batch_size=3,
                         epochs=1, backbone="resnet18", weights="none", seed=1)
    return train_classifier(config, folder / "run", progress=False), manifest


def outside_the_lungs(manifest) -> np.ndarray:
    """Where a lungs-only image must be black: outside the cropped, dilated lungs."""
    masks = torch.from_numpy(fitted_masks(manifest, SIZE, default_segmenter(), progress=False)).float()[:, None]
    return (apply_region(torch.ones_like(masks), masks, "lungs-only") == 0)[:, 0].numpy()


def test_training_and_test_images_are_black_outside_the_lungs(lungs_only_run):
    run, manifest = lungs_only_run
    assert read_json(run / "config.json")["region"] == "lungs-only" and run.name == "run"
    dataset = CXRDataset(manifest, SIZE, progress=False, region="lungs-only")
    outside = outside_the_lungs(manifest)
    assert outside.any() and (~outside).any()
    assert (dataset.images[outside] == 0).all()
    plain = CXRDataset(manifest, SIZE, progress=False)
    assert (plain.images[outside] > 0).mean() > 0.5  # the whole image has grey levels there
    cams = read_json(run / "gradcam.json")
    assert cams["region"] == "lungs-only" and 0 < cams["mean_lung_area"] < 1
    assert all(0 <= image["lung_share"] <= 1 for image in cams["images"] if image["lung_share"] is not None)


def test_the_region_travels_with_the_checkpoint_and_predict_uses_it(lungs_only_run):
    run, manifest = lungs_only_run
    best = checkpoint.load(run / "best.pt")
    assert best["region"] == "lungs-only"
    with pytest.raises(CheckpointMismatchError, match="region='lungs-only'"):
        load_weights(build_model("resnet18"), best, run / "best.pt")
    gray = read_grayscale(manifest[0].file)
    fitted = torch.from_numpy(fit_square(lungs_of(gray).astype(np.uint8) * 255, SIZE) >= 128).float()[None, None]
    outside = (apply_region(torch.ones_like(fitted), fitted, "lungs-only") == 0)[0, 0].numpy()
    analysis = Predictor(run, device="cpu")(gray)  # a file of no known patient: its mask from lungs_of
    assert (analysis.image[outside] == 0).all() and (analysis.image[~outside] > 0).mean() > 0.5


def test_a_file_of_the_runs_data_is_segmented_by_its_patients_fold_model(lungs_only_run):
    run, manifest = lungs_only_run
    patients = known_patients(read_json(run / "config.json"))
    assert all(patients[r.sha256] == r.patient_id for r in manifest)  # so predict's mask is the split's


def test_a_lungs_only_run_exports_with_its_segmenter_and_the_graphs_equal_the_tool(lungs_only_run, tmp_path):
    run, manifest = lungs_only_run
    out = export_run(run, tmp_path / "export", progress=False)
    checks = read_json(out / "checks.json")
    assert checks["onnx"]["checked"] and checks["onnx"]["largest_difference"] <= checks["onnx"]["tolerance"]
    assert checks["lungs_onnx"]["ok"] and (out / "lungs.onnx").is_file()
    spec = read_json(out / "preprocess.json")
    assert spec["lungs_input"]["name"] == "lungs" and spec["inside_the_graph"]["region"] == "lungs-only"
    assert spec["lungs"]["segmenter_sha256"] == default_segmenter().checksum
    file = manifest.select(split="test")[0].file
    done = subprocess.run([sys.executable, str(out / "example.py"), str(file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    theirs = {line.split()[0]: float(line.split()[1]) for line in done.stdout.splitlines()}
    predictor, gray = Predictor(run, device="cpu"), read_grayscale(file)
    ours = predictor(gray, lungs=predictor.lungs(gray, sha256_of(file))).probabilities  # lung_folds.json's fold
    assert set(theirs) == set(ours) and max(abs(theirs[c] - ours[c]) for c in ours) < 0.05  # masks from Pillow


def test_an_input_without_lungs_is_flagged_in_one_line(tiny_run, cxr3, tmp_path):
    run, _ = tiny_run
    check = checker_for_run(read_json(run / "config.json"))
    xray = read_grayscale(cxr3.select(split="test")[0].file)
    assert "is this a frontal chest X-ray?" not in check(xray, lungs_of(xray)).sentence()
    flagged = check(xray, np.zeros_like(xray, dtype=bool))
    assert not flagged.ok and flagged.reasons[-1] == "no lungs found: is this a frontal chest X-ray?"
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8)).save(noise)
    (prediction,) = predict_files([noise], run, tmp_path / "out")
    assert not prediction.quality.ok and "\n" not in prediction.quality.sentence()
