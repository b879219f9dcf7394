"""The web page's API, the input quality gate and a bounded load test, on real corpus images and
hostile files (the browser test is in test_serve_browser.py)."""
from __future__ import annotations

import base64
import io
import tempfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from classifier.evaluation.gate_study import documents, flat_images, noise_images, screenshots
from classifier.inference.load_test import run_load
from classifier.inference.predict import predict_files
from classifier.inference.input_gate import QualityGate, aspect_range, thumbnails
from classifier.inference.serve import create_app
from conftest import few, png_header_only

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def client(tiny_run, tmp_path_factory):
    run, _ = tiny_run
    return TestClient(create_app(run, max_upload_mb=2, max_files=4))


def upload(client, *files):
    return client.post("/api/predict",
                       files=[("files", (name, data, "application/octet-stream")) for name, data in files])


def test_a_real_image_gets_probabilities_overlays_per_class_and_a_verdict(client, tiny_run, cxr3, tmp_path):
    record = cxr3.select(split="test", label="covid")[0]
    response = upload(client, ("chest.png", record.file.read_bytes()))
    assert response.status_code == 200
    result, = response.json()["results"]
    assert result["ok"] and result["name"] == "chest.png"
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert result["predicted"] == max(result["probabilities"], key=result["probabilities"].get)
    for overlay in result["overlays"].values():
        assert overlay.startswith("data:image/png;base64,")
        assert Image.open(io.BytesIO(base64.b64decode(overlay.split(",", 1)[1]))).size == (32, 32)
    assert set(result["quality"]) >= {"ok", "reasons", "sentence"} and result["reliable"] == result["quality"]["ok"]
    assert response.json()["model"]["name"] == tiny_run[0].name
    same, = predict_files([record.file], tiny_run[0], tmp_path)  # the CLI answers the same
    assert same.probabilities == pytest.approx(result["probabilities"], abs=1e-6)


def test_bad_files_get_a_4xx_naming_the_problem_and_never_a_500(client, cxr3, tmp_path):
    real = cxr3[0].file.read_bytes()
    png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    pydicom = pytest.importorskip("pydicom")
    dataset = pydicom.Dataset()
    dataset.PatientName = "no^pixels"
    dataset.file_meta = pydicom.dataset.FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR image
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.save_as(tmp_path / "empty.dcm", enforce_file_format=True)
    cases = {"empty.png": (b"", "file is empty"), "text.png": (b"hello\n" * 50, "not a readable image"),
             "cut.png": (real[: len(real) // 2], "corrupt or truncated"),
             "bomb.png": ((tmp_path / "bomb.png").read_bytes(), "refused"),
             "nopixels.dcm": ((tmp_path / "empty.dcm").read_bytes(), "unreadable DICOM")}
    for name, (data, reason) in cases.items():
        response = upload(client, (name, data))
        assert response.status_code == 422 and f"{name}: " in response.json()["detail"], response.text
        assert reason in response.json()["detail"]
    mixed = upload(client, ("good.png", real), ("bad.png", b""))
    assert mixed.status_code == 200 and [r["ok"] for r in mixed.json()["results"]] == [True, False]


def test_limits_and_malformed_requests_are_refused_clearly(client, cxr3):
    real = cxr3[0].file.read_bytes()
    too_big = upload(client, ("big.png", b"0" * (3 * 2**20)))
    assert too_big.status_code == 413 and "over the 2 MB limit" in too_big.json()["detail"]
    too_many = upload(client, *[(f"{i}.png", real) for i in range(5)])
    assert too_many.status_code == 413 and "at most 4" in too_many.json()["detail"]
    assert client.post("/api/predict", data={"x": "1"}).status_code == 400
    assert client.post("/api/predict", files=[("other", ("a.png", real))]).status_code == 400
    assert "not a diagnostic device" in client.get("/").text + client.get("/api/model").json()["disclaimer"]


def test_client_names_are_never_paths_and_nothing_is_left_behind(client, cxr3, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    response = upload(client, ("../../../../etc/passwd", cxr3[0].file.read_bytes()), ("..\\..\\boot.ini", b""))
    assert [r["name"] for r in response.json()["results"]] == ["passwd", "boot.ini"]
    assert list(tmp_path.iterdir()) == []


# ---- the quality gate --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gate(cxr3):
    """The gate fitted on a real subset: 60 training and 30 validation images per class."""
    from cxrdata.cache import cached_images
    from classifier.inference.input_gate import THUMB

    train = few(cxr3, "train", 60)
    return QualityGate.fit(cached_images(train, THUMB, progress=False),
                           cached_images(few(cxr3, "val", 30), THUMB, progress=False), aspect_range(train))


def test_the_gate_score_is_the_probabilistic_pca_mahalanobis_distance(cxr3):
    """Known answer: our low-rank formula equals x P xᵀ with sklearn's own precision matrix."""
    from sklearn.decomposition import PCA

    from classifier.inference.input_gate import COMPONENTS, THUMB
    from cxrdata.cache import cached_images

    train = cached_images(few(cxr3, "train", 40), THUMB, False)
    probe = cached_images(few(cxr3, "test", 5), THUMB, False)
    gate = QualityGate.fit(train, train[:10], aspect_range=(1.0, 1.0))
    pca = PCA(n_components=COMPONENTS, random_state=0).fit(thumbnails(train))
    centred = thumbnails(probe) - pca.mean_
    expected = np.einsum("ij,jk,ik->i", centred, pca.get_precision(), centred) / centred.shape[1]
    np.testing.assert_allclose(gate.scores(probe), expected, rtol=1e-6)


def test_the_gate_passes_real_chest_x_rays_and_flags_what_is_not_one(gate, cxr3):
    from cxrdata import read_grayscale

    held_out = [not gate.check(read_grayscale(r.file)).ok for r in few(cxr3, "test", 20)]
    assert sum(held_out) <= 3, f"{sum(held_out)} of 60 real test images flagged"
    for name, image in documents(3, 7) + screenshots(3, 8) + flat_images()[:4] + noise_images(4, 9):
        verdict = gate.check(np.asarray(image.convert("L")))
        assert not verdict.ok and verdict.reasons, name
    small = gate.check(np.full((40, 60), 100, np.uint8) + np.arange(60, dtype=np.uint8))
    assert "too small (60×40 px" in small.sentence()
    assert gate.check(np.full((300, 300), 7, np.uint8)).sentence() == "blank / nearly uniform"


def strip_of(record, width: int = 2000, height: int = 100) -> Image.Image:
    """A real chest X-ray squeezed into a long grey strip: its centre crop still looks like one."""
    return Image.open(record.file).convert("L").resize((width, height), Image.Resampling.LANCZOS)


def test_the_gate_flags_a_strip_by_its_shape_and_passes_the_training_shapes(gate, cxr3):
    low, high = gate.aspect_range
    train = few(cxr3, "train", 60)
    assert (low, high) == aspect_range(train) and 0.5 < low <= 1 <= high < 3
    strip = gate.check(np.asarray(strip_of(cxr3.select(split="test", label="normal")[0])))
    assert not strip.ok
    assert "not shaped like a frontal chest X-ray (2000×100 px, width / height 20.00" in strip.sentence()
    tall = gate.check(np.asarray(strip_of(cxr3.select(split="test", label="normal")[0], 100, 2000)))
    assert not tall.ok and "width / height 0.05" in tall.sentence()
    for record in train:  # every training image's own shape passes this check
        width, height = Image.open(record.file).size
        assert low <= width / height <= high


def test_predict_and_serve_flag_the_strip_alike(client, tiny_run, cxr3, tmp_path):
    path = tmp_path / "strip.png"
    strip_of(cxr3.select(split="test", label="covid")[0]).save(path)
    result, = upload(client, ("strip.png", path.read_bytes())).json()["results"]
    assert not result["reliable"] and "not shaped like a frontal chest X-ray" in result["quality"]["sentence"]
    predicted, = predict_files([path], tiny_run[0], tmp_path / "out")
    assert not predicted.quality.ok and predicted.quality.sentence() == result["quality"]["sentence"]


def test_a_bounded_load_test_answers_every_request_and_keeps_memory(tiny_run, cxr3):
    images = [r.file for r in few(cxr3, "test", 2)]
    result = run_load(tiny_run[0], images, requests=48, concurrency=4, warmup=8)
    assert result["server_alive"] and result["correct"] == 48 and result["bad_files"] == 12
    assert result["rss_after_mb"] - result["rss_before_mb"] < 50, result
