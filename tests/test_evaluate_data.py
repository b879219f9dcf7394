"""``cxr classify evaluate`` and ``predict`` on a tiny finished run: the run's own test split is
reproduced exactly, folders and manifests of real images are evaluated with absent classes,
unreadable files and training images named, and every misuse gets one clear message."""
from __future__ import annotations

import csv
import shutil

import pytest
from PIL import Image
from click.testing import CliRunner

from classifier.cli import classify_cli
from classifier.evaluation.evaluate_external import evaluate_run
from classifier.evaluation.labelled import LabelledDataError
from classifier.inference.predict import predict_files
from classifier.inference.runs import RunNotUsableError
from runkit.rundir import RunExistsError, read_json

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]
PROBABILITIES = ("predicted", "p_normal", "p_covid", "p_pneumonia")


@pytest.fixture
def run(tiny_run):
    return tiny_run


@pytest.fixture
def paediatric(small_corpus, tmp_path):
    """A folder by class of real paediatric images (no covid), nested, with one broken file."""
    data = tmp_path / "paediatric"
    for record in small_corpus:
        target = data / ("Normal" if record.label == "normal" else "pneumonia/nested") / record.file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(record.file, target)
    (data / "Normal" / "broken.png").write_bytes(b"not an image")
    return data


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluating_the_runs_own_test_split_reproduces_its_predictions(run, tmp_path):
    run_dir, manifest = run
    result = evaluate_run(run_dir, run_dir.parent / "tiny.csv", tmp_path / "own", split="test", progress=False)
    ours, theirs = rows(result.out_dir / "predictions.csv"), rows(run_dir / "predictions.csv")
    assert [r["path"] for r in ours] == [r["path"] for r in theirs]
    assert [[r[k] for k in PROBABILITIES] for r in ours] == [[r[k] for k in PROBABILITIES] for r in theirs]
    own = [i["border_share"] for i in read_json(run_dir / "gradcam.json")["images"]]  # None: an all-zero map
    assert [r["border_share"] for r in ours] == ["" if s is None else f"{s:.4f}" for s in own]
    assert all(s is None or 0 <= s <= 1 for s in own)
    assert result.metrics["test"] == read_json(run_dir / "metrics.json")["test"]
    assert not result.in_training


def test_a_folder_by_class_reports_absent_classes_unreadable_files_and_training_images(run, paediatric, tmp_path):
    run_dir, manifest = run
    trained = manifest.select(split="train", label="normal")[0]
    shutil.copy(trained.file, paediatric / "Normal" / "seen-in-training.png")
    strip = Image.open(trained.file).convert("L").resize((2000, 100))  # a real CXR squeezed into a strip
    strip.save(paediatric / "pneumonia" / "strip.png")
    result = evaluate_run(run_dir, paediatric, tmp_path / "out", progress=False)
    m = result.metrics
    assert (m["images"], m["evaluated"]) == (11, 10)
    strip_flag, = [q for q in m["quality_flagged"] if q["file"] == "pneumonia/strip.png"]
    assert "not shaped like a frontal chest X-ray (2000×100 px" in strip_flag["reason"]
    assert {r["path"]: r["quality_ok"] for r in rows(result.out_dir / "predictions.csv")}["pneumonia/strip.png"] == "0"
    assert m["test"]["classes_present"] == ["normal", "pneumonia"]
    assert m["test"]["per_class"]["covid"]["recall"] is None and m["test"]["per_class"]["covid"]["support"] == 0
    assert [u["file"] for u in m["unreadable"]] == [str(paediatric / "Normal" / "broken.png")]
    assert result.in_training == ["Normal/seen-in-training.png"]
    called = sum(r["predicted"] == "covid" for r in rows(result.out_dir / "predictions.csv"))
    assert m["covid_false_positive"]["k"] == called and m["covid_false_positive"]["n"] == 10
    text = (result.out_dir / "report.md").read_text()
    assert "| covid | 0 | absent |" in text and "broken.png" in text and "seen-in-training.png" in text
    assert "flagged by the input quality gate" in text and "`pneumonia/strip.png`: not shaped like" in text
    for name in ("config.json", "metrics.json", "confusion.png", "finished.json", "gradcam/grid_normal.png",
                 "gradcam/grid_pneumonia.png"):
        assert (result.out_dir / name).is_file(), name
    assert not (result.out_dir / "gradcam" / "grid_covid.png").exists()
    assert len(list((result.out_dir / "gradcam" / "overlays").iterdir())) == 10


def test_misuse_gets_one_clear_message(run, paediatric, tmp_path):
    run_dir, _ = run
    (paediatric / "lateral").mkdir()
    with pytest.raises(LabelledDataError, match="lateral.*accepted names: normal, covid, pneumonia"):
        evaluate_run(run_dir, paediatric, tmp_path / "a", progress=False)
    assert evaluate_run(run_dir, paediatric, tmp_path / "a", ignore_unknown=True,
                        progress=False).ignored_folders == ["lateral"]
    with pytest.raises(RunExistsError, match="finished evaluation; pass --overwrite"):
        evaluate_run(run_dir, paediatric, tmp_path / "a", ignore_unknown=True, progress=False)
    with pytest.raises(LabelledDataError, match="inside the model's run folder"):
        evaluate_run(run_dir, paediatric, run_dir / "eval", ignore_unknown=True, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelledDataError, match="no files found in class folders"):
        evaluate_run(run_dir, tmp_path / "empty", tmp_path / "b", progress=False)
    with pytest.raises(RunNotUsableError, match="not a classifier run"):
        evaluate_run(tmp_path, paediatric, tmp_path / "c", progress=False)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    (unfinished / "finished.json").unlink()
    with pytest.raises(RunNotUsableError, match="--allow-unfinished"):
        evaluate_run(unfinished, paediatric, tmp_path / "d", ignore_unknown=True, progress=False)
    assert evaluate_run(unfinished, paediatric, tmp_path / "d", ignore_unknown=True, allow_unfinished=True,
                        progress=False).metrics["evaluated"] == 8
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,patient_id,source,sha256\nx.png,flu,,,\n")
    cli = CliRunner().invoke(classify_cli, ["evaluate", str(run_dir), str(bad), "--out", str(tmp_path / "e")])
    assert cli.exit_code == 1 and "line 2: unknown label 'flu'" in cli.output


def test_predict_writes_outside_the_run_keeps_same_named_files_apart_and_writes_a_table(
        run, small_corpus, tmp_path, monkeypatch):
    run_dir, _ = run
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(small_corpus[0].file, tmp_path / folder / "x.png")
    monkeypatch.chdir(tmp_path)
    results = list(predict_files([tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"], run_dir, cam_class="predicted"))
    assert results[0].overlay != results[1].overlay and all(r.overlay.is_file() for r in results)
    assert all(r.overlay.resolve().parent == tmp_path / "runs" / "predict" / run_dir.name for r in results)
    cli = CliRunner().invoke(classify_cli, ["predict", str(tmp_path / "a" / "x.png"), "--run", str(run_dir),
                                            "--csv", str(tmp_path / "table.csv")])
    assert cli.exit_code == 0, cli.output
    table = rows(tmp_path / "table.csv")
    assert table[0]["file"] == str(tmp_path / "a" / "x.png") and table[0]["predicted"] == results[0].predicted
