"""`cxr data import` on real corpus images arranged as public datasets are: the Makris et al.
repository (train/ and test/ by class), the COVID-19 Radiography Database (class folders with
images/ and masks/), COVIDGR (P/ and N/, two classes) and a CSV with patient ids."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from classifier.cli import classify_cli
from cxrdata import Manifest
from cxrdata.cli import data_cli
from cxrdata.importing import DataImportError, import_dataset
from pipelines.experiment.compare import CompareConfig, run_compare
from helpers import TINY_CLASSIFIER, TINY_GAN

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]


def lay_out(manifest: Manifest, folder: Path, per_class: int, name_of, split: str | None = None) -> list:
    """Copy ``per_class`` images of each class (of ``split``) to ``folder / name_of(label) / file``."""
    chosen = []
    for label in ("normal", "covid", "pneumonia"):
        rows = [r for r in manifest if r.label == label and (split is None or r.split == split)][:per_class]
        for r in rows:
            target = folder / name_of(label) / r.file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(r.file, target)
        chosen += rows
    return chosen


@pytest.fixture
def makris_layout(makris, tmp_path) -> Path:
    """The Makris et al. repository's layout: train/ and test/, each with covid/ normal/ pneumonia/."""
    src = tmp_path / "COVID19-XRay-Dataset"
    lay_out(makris, src / "train", 8, str, "train")
    lay_out(makris, src / "test", 3, str, "test")
    return src


def test_the_makris_layout_keeps_its_split_trains_and_evaluates(makris_layout, tmp_path):
    result = import_dataset(makris_layout, "makris-import", keep_split=True, out_dir=tmp_path, progress=False)
    manifest = Manifest.read(result.path)  # the sidecar gives the root: no --root needed
    assert json.loads(result.path.with_suffix(".json").read_text())["root"] == str(makris_layout.resolve())
    assert {r.path.split("/")[0] for r in manifest.select(split="test")} == {"test"}
    assert {r.path.split("/")[0] for r in manifest.select(split="train") + manifest.select(split="val")} == {"train"}
    assert len(manifest.select(split="test")) == 9 and len(manifest.select(split="val")) >= 3  # val carved from train
    assert all(r.file.is_file() for r in manifest) and result.warnings  # no patient ids: said loudly
    verify = CliRunner().invoke(data_cli, ["verify", str(result.path)])
    assert verify.exit_code == 0, verify.output

    run = tmp_path / "run"
    trained = CliRunner().invoke(classify_cli, ["train", "--dataset", str(result.path), "--out", str(run),
                                                "--epochs", "1", "--image-size", "32", "--batch-size", "4",
                                                "--no-cross-source"])
    assert trained.exit_code == 0, trained.output
    evaluated = CliRunner().invoke(classify_cli, ["evaluate", "--run", str(run), str(result.path), "--split", "test",
                                                  "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["evaluated"] == 9 and metrics["test"]["accuracy"] == json.loads(
        (run / "metrics.json").read_text())["test"]["accuracy"]

    config = CompareConfig(dataset=str(result.path), n_synthetic=2, seeds=(0,), classifier=TINY_CLASSIFIER,
                           gan=TINY_GAN, lung_controls=False)
    out = run_compare(config, tmp_path / "compare", progress=False, log=lambda *a: None)
    report = json.loads((out / "report.json").read_text())
    assert report["replicates"][0]["v1"]["n"] == report["replicates"][0]["v2"]["n"] == 9


def test_the_radiography_database_layout_maps_names_skips_masks_and_unreadable_files(cxr3, tmp_path):
    src = tmp_path / "COVID-19_Radiography_Dataset"
    names = {"normal": "Normal/images", "covid": "COVID/images", "pneumonia": "Viral Pneumonia/images"}
    chosen = lay_out(cxr3, src, 10, names.get)
    for label, folder in names.items():  # segmentation masks beside the images are not images to train on
        (src / folder.replace("images", "masks")).mkdir(parents=True)
        shutil.copy(chosen[0].file, src / folder.replace("images", "masks") / "mask.png")
    lay_out(cxr3, src, 2, lambda label: "Lung_Opacity/images")  # mapped to skip by default
    (src / "COVID" / "images" / "broken.png").write_bytes(b"not an image")
    (src / "COVID.metadata.txt").write_text("a file beside the folders")
    result = import_dataset(src, "radiography", out_dir=tmp_path, progress=False)
    counts = {label: sum(n.get(label, 0) for n in result.manifest.counts().values()) for label in names}
    assert counts == {"normal": 10, "covid": 10, "pneumonia": 10}
    assert [Path(f).name for f, _ in result.unreadable] == ["broken.png"]
    assert not any("masks" in r.path or "Lung_Opacity" in r.path for r in result.manifest)
    assert {r.extra["original_class"] for r in result.manifest} == {"Normal", "COVID", "Viral Pneumonia"}
    for split, share in (("train", 0.7), ("val", 0.1), ("test", 0.2)):  # the project's grouped split
        assert abs(len(result.manifest.select(split=split)) / 30 - share) <= 0.1, split
    strict = CliRunner().invoke(data_cli, ["import", str(src), "--name", "strict", "--strict", "--quiet",
                                           "--out", str(tmp_path)])
    assert strict.exit_code == 1 and "broken.png" in strict.output and "--strict: nothing written" in strict.output


def test_a_two_class_folder_needs_a_map_then_trains_on_the_classes_it_has(cxr3, tmp_path):
    src = tmp_path / "COVIDGR"
    lay_out(Manifest([r for r in cxr3 if r.label != "pneumonia"]), src, 10,
            {"covid": "P", "normal": "N"}.get)
    with pytest.raises(DataImportError, match="class folder.s. N, P map to no class; add --map"):
        import_dataset(src, "covidgr", out_dir=tmp_path, progress=False)
    result = import_dataset(src, "covidgr", maps=("P=covid", "N=normal"), out_dir=tmp_path, progress=False)
    assert json.loads(result.path.with_suffix(".json").read_text())["classes"] == ["normal", "covid"]
    run = tmp_path / "run"
    trained = CliRunner().invoke(classify_cli, ["train", "--dataset", str(result.path), "--out", str(run),
                                                "--epochs", "1", "--image-size", "32", "--batch-size", "4",
                                                "--no-cross-source"])
    assert trained.exit_code == 0, trained.output
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["classes_present"] == ["normal", "covid"]
    assert test["macro"]["recall"] is not None  # averaged over the two classes it has, not undefined
    assert "| pneumonia | absent from the test split" in (run / "report.md").read_text()
    from fastapi.testclient import TestClient

    from classifier.inference.serve import create_app

    served = TestClient(create_app(run)).get("/api/model").json()
    assert served["classes"] == ["normal", "covid"]  # the page shows these two


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_csv_with_patient_ids_groups_patients_and_bad_input_is_one_line(cxr3, tmp_path):
    src = tmp_path / "export"
    chosen = lay_out(cxr3, src / "img", 12, str)
    rows = [{"file": f"img/{r.label}/{r.file.name}", "finding": r.label.upper(), "pid": r.patient_id,
             "hospital": r.source} for r in chosen]
    table = write_csv(src / "labels.csv", rows)
    result = import_dataset(table, "hospital", columns={"path": "file", "label": "finding", "patient": "pid",
                                                       "source": "hospital"}, out_dir=tmp_path, progress=False)
    assert not result.warnings and {r.source for r in result.manifest} == {r.source for r in chosen}
    split_of = {}
    for r in result.manifest:
        assert split_of.setdefault(r.patient_id, r.split) == r.split  # no patient in two splits

    runner = CliRunner()
    base = ["--path-column", "file", "--label-column", "finding", "--quiet", "--out", str(tmp_path / "out")]
    outside = write_csv(src / "outside.csv", [{**rows[0], "file": "../../etc/passwd"}])
    missing = write_csv(src / "missing.csv", [{**rows[0], "file": "img/normal/nowhere.png"}])
    twice = write_csv(src / "twice.csv", [rows[0], {**rows[0], "finding": "COVID"}])
    few = write_csv(src / "few.csv", rows[:2] + [r for r in rows if r["finding"] == "COVID"])
    cases = [([str(tmp_path / "absent")], "no such folder or CSV"),
             ([str(table), "--label-column", "diagnosis"], "no column(s) diagnosis (--label-column)"),
             ([str(outside)], "leads outside"), ([str(missing)], "nowhere.png (CSV line 2): file not found"),
             ([str(twice)], "listed under two labels"), ([str(few)], "too few images of normal (2)"),
             ([str(table), "--map", "NORMAL=tumour"], "--map 'NORMAL=tumour': write NAME=CLASS"),
             ([str(src / "img" / "normal")], "holds image files but no class subfolders"),
             ([str(src)], "class folder(s) img map to no class")]
    for args, message in cases:
        out = runner.invoke(data_cli, ["import", *base, "--name", "bad", *args])
        assert out.exit_code in (1, 2) and message in out.output, (args, out.output)
        assert len(out.output.strip().splitlines()) == 1, out.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(data_cli, ["import", str(tmp_path / "empty"), "--name", "bad", *base])
    assert empty.exit_code == 1 and "no image files found" in empty.output
    clash = runner.invoke(data_cli, ["import", *base, "--out", str(Path("data_manifests").resolve()), str(table),
                                     "--name", "cxr3"])
    assert clash.exit_code == 1 and "exists; choose another --name or pass --overwrite" in clash.output
