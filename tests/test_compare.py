"""The experiment end to end on a tiny real configuration, and its option checks."""
from __future__ import annotations

import pytest

from helpers import TINY_CLASSIFIER, TINY_GAN
from conftest import few
from cxrdata.manifest import Manifest, manifest_path
from cxrdata.splits import EXTRA_COLUMNS
from classifier.evaluation.crosssource import corpus_manifest, out_of_source
from pipelines.experiment.compare import CompareConfig, CompareError, run_compare
from pipelines.experiment.report import headline_table
from runkit.rundir import read_json


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory, request):
    request.getfixturevalue("corpus")  # its progression patient is in the whole corpus only
    cxr3 = Manifest.read(manifest_path("cxr3"))
    progression = [r for r in cxr3 if r.patient_id == "ieee8023-178"]
    assert {r.split for r in progression} == {"test"} and len(progression) >= 3
    records = few(cxr3, "train", 4).records + few(cxr3, "val", 1).records + few(cxr3, "test", 2).records
    path = tmp_path_factory.mktemp("tiny") / "tiny.csv"
    Manifest(records + progression, name="tiny").write(path, extra_columns=EXTRA_COLUMNS)
    return path


@pytest.mark.integration
def test_compare_runs_every_step_writes_the_report_and_reuses_it(tiny_manifest, tmp_path):
    config = CompareConfig(dataset=str(tiny_manifest), n_synthetic=2, seeds=(0, 1), classifier=TINY_CLASSIFIER,
                           gan=TINY_GAN, sweep=(1,))
    messages = []
    out = run_compare(config, tmp_path / "exp", progress=False, log=messages.append)
    report = read_json(out / "report.json")
    assert [r["replicate"] for r in report["replicates"]] == ["seed0", "seed1"]
    n_test = len(Manifest.read(tiny_manifest).select(split="test"))
    assert report["replicates"][0]["v1"]["n"] == n_test
    pooled = report["pooled"]
    assert 0.0 <= pooled["mcnemar"]["p_value"] <= 1.0
    assert pooled["accuracy"]["low"] <= pooled["accuracy"]["estimate"] <= pooled["accuracy"]["high"]
    assert [p["n"] for p in report["sweep"]] == [0, 1, 2]
    controls = report["lung_controls"]
    v1_sees = read_json(out / "classify" / "seed0-v1" / "config.json")["region"]
    assert set(controls) == {"full", "box", "lungs-removed", "lungs-only", "outline"} - {v1_sees}
    assert all(controls[name]["verdict"] for name in ("box", "lungs-removed", "outline"))
    assert "| lungs-removed |" in (out / "report.md").read_text() and report["lung_controls_v1"]["accuracy"] >= 0
    assert report["progression"]["patient_id"] == "ieee8023-178"
    assert (out / "figures" / "progression.png").is_file()
    text = (out / "report.md").read_text()
    oos = report["out_of_source"]
    assert [r["replicate"] for r in oos["per_replicate"]] == ["seed0", "seed1"]
    assert oos["n"] == 8 and oos["sources"] == ["kaggle-paediatric"]  # conftest's small corpus
    first = oos["per_replicate"][0]["v1"]
    assert first["rate"] == read_json(out / "classify" / "seed0-v1" / "metrics.json")["cross_source"][
        "covid_false_positive"]["rate"]
    assert oos["delta"]["low"] <= oos["delta"]["estimate"] <= oos["delta"]["high"]
    assert set(report["per_source"]["v1"]) == {r.source for r in Manifest.read(tiny_manifest).select(split="test")}
    assert "out-of-source covid false positives" in headline_table(report)
    for heading in ("## Data", "## Out-of-source check", "## Shortcut audit", "## Disease progression",
                    "## Beside the published numbers", "## Synthetic images", "### Realism"):
        assert heading in text
    for link in [line.split("](")[1].split(")")[0] for line in text.splitlines() if "](" in line]:
        assert (out / link).is_file(), f"report links a missing file: {link}"
    train_images = Manifest.read(out / "classify" / "seed0-v2" / "train_images.csv", root="/")
    synthetic = [r for r in train_images if r.source == "synthetic"]
    assert len(synthetic) == 2 and all(r.split == "train" for r in synthetic)

    messages.clear()
    run_compare(config, tmp_path / "exp", progress=False, log=messages.append)
    assert messages and all(m.endswith("reused") for m in messages), messages


@pytest.mark.integration
def test_holdout_source_leaves_the_source_out_of_every_split(tiny_manifest, cxr3, tmp_path):
    nih = Manifest([r for r in cxr3 if r.source == "nih"])
    with_nih = tmp_path / "tiny.csv"
    Manifest(Manifest.read(tiny_manifest).records + few(nih, "train", 2).records + few(nih, "test", 1).records
             ).write(with_nih, extra_columns=EXTRA_COLUMNS)
    config = CompareConfig(dataset=str(with_nih), n_synthetic=1, seeds=(0,), classifier=TINY_CLASSIFIER,
                           gan=TINY_GAN, holdout_source="nih", lung_controls=False)
    out = run_compare(config, tmp_path / "exp", progress=False, log=lambda m: None)
    derived = Manifest.read(out / "tiny-without-nih.csv")
    assert derived and not any(r.source == "nih" for r in derived)
    assert read_json(out / "classify" / "seed0-v1" / "config.json")["dataset"] == str(out / "tiny-without-nih.csv")
    trained = Manifest.read(out / "classify" / "seed0-v1" / "train_images.csv", root="/")
    assert not any(r.source == "nih" for r in trained)
    held_out = out_of_source(corpus_manifest(), derived, derived.select(split="train"))
    assert sum(r.source == "nih" for r in held_out) == 1000  # every NIH image is met out of source


@pytest.mark.parametrize("settings, message", [
    ({"holdout_source": "hospital9"}, "not a source of cxr3"),
    ({"classifier": {"backbone": "resnet9000"}}, "unknown backbone 'resnet9000'"),
    ({"classifier": {"nosuchkey": 3}}, "unknown setting.*nosuchkey"),
    ({"gan": {"nosuchkey": 3}}, "unknown setting.*nosuchkey"),
    ({"classifier": {"device": "banana"}}, "--device banana: not a device name"),
    ({"gan": {"lr": -1}}, "lr must be positive"),
    ({"folds": 5, "dataset": "makris2020"}, "published, fixed"),
    ({"folds": 5, "gan_run": "runs/gan/cpu"}, "GAN trained on its own training split"),
    ({"folds": 5, "seeds": (0, 1)}, "give one seed"),
    ({"n_synthetic": 0}, "n_synthetic 0: the number"),
    ({"seeds": (1, 1)}, "seeds repeat"),
])
def test_conflicting_options_are_refused(settings, message):
    with pytest.raises(CompareError, match=message):
        CompareConfig(**settings)


def test_a_gan_trained_on_another_split_is_refused(tiny_manifest, tmp_path):
    gan = tmp_path / "gan"
    gan.mkdir()
    (gan / "checkpoint.pt").write_bytes(b"x")
    (gan / "config.json").write_text('{"manifest": "cxr3"}')
    config = CompareConfig(dataset=str(tiny_manifest), gan_run=str(gan), seeds=(0,))
    with pytest.raises(CompareError, match="trained on 'cxr3'"):
        run_compare(config, tmp_path / "exp", progress=False, log=lambda m: None)


@pytest.mark.integration
def test_counterfactual_arms_stand_beside_v1_with_the_same_statistics(mixed_sources_csv, tmp_path):
    config = CompareConfig(dataset=str(mixed_sources_csv), n_synthetic=2, seeds=(0,), classifier=TINY_CLASSIFIER,
                           gan=TINY_GAN, lung_controls=False, counterfactual=True)
    messages = []
    out = run_compare(config, tmp_path / "exp", progress=False, log=messages.append)
    runs = read_json(out / "replicates.json")[0]["runs"]
    assert set(runs) == {"v1", "v2", "v3", "v2+v3"}
    for arm in ("v3", "v2+v3"):
        trained = read_json(tmp_path / "exp" / "classify" / f"seed0-{arm}" / "config.json")
        assert trained["aug"] == arm and trained["counterfactual_manifest"].startswith(str(out / "counterfactual"))
    source_gan = read_json(out / "gan-source" / "config.json")
    assert source_gan["dataset"] == str(mixed_sources_csv) and source_gan["labels"] == "normal,pneumonia"
    block = read_json(out / "report.json")["counterfactual"]
    assert set(block) == {"v2", "v3", "v2+v3"}
    for arm, r in block.items():
        assert r["delta"]["accuracy"]["low"] <= r["delta"]["accuracy"]["estimate"] <= r["delta"]["accuracy"]["high"]
        assert 0 <= r["accuracy"]["mean"] <= 1 and r["out_of_source"]["rate"]["n"] == 1
    assert block["v2"]["delta"] == read_json(out / "report.json")["pooled"]  # the v2 row is the experiment's own
    assert "## Counterfactual source translations (v3)" in (out / "report.md").read_text()
    again = []
    run_compare(config, tmp_path / "exp", progress=False, log=again.append)
    assert not [m for m in again if m.endswith(": ran")], again  # every step reused


@pytest.mark.integration
def test_lung_gan_arm_stands_beside_v1_and_v2_with_the_validation_rule(mixed_sources_csv, tmp_path):
    config = CompareConfig(dataset=str(mixed_sources_csv), n_synthetic=2, seeds=(0,), classifier=TINY_CLASSIFIER,
                           gan={**TINY_GAN, "realism_every": 0}, lung_controls=False, lung_gan=True)
    out = run_compare(config, tmp_path / "exp", progress=False, log=lambda *a: None)
    runs = read_json(out / "replicates.json")[0]["runs"]
    assert set(runs) == {"v1", "v2", "v2-lungs"}
    lungs_gan = read_json(out / "gan-lungs" / "config.json")
    assert lungs_gan["region"] == "lungs" and lungs_gan["dataset"] == str(mixed_sources_csv)
    trained = read_json(out / "classify" / "seed0-v2-lungs" / "config.json")
    assert trained["synth_manifest"] == str(out / "synthetic-lungs" / "manifest.csv")
    report = read_json(out / "report.json")
    block = report["lung_gan"]
    assert set(block["arms"]) == {"v2", "v2-lungs"}
    assert block["arms"]["v2"]["delta"] == report["pooled"]  # the v2 row is the experiment's own
    choice = block["choice"]
    validation = {arm: read_json(out / "classify" / f"seed0-{arm}" / "metrics.json")["training"]
                  for arm in ("v2", "v2-lungs")}
    for arm, training in validation.items():
        kept = [h for h in training["history"] if h["epoch"] == training["best_epoch"]][0]
        assert choice["mean_validation_accuracy"][arm] == kept["val_accuracy"]
    means = choice["mean_validation_accuracy"]
    assert choice["picked"] == ("v2-lungs" if means["v2-lungs"] >= means["v2"] else "v2")
    assert block["synthesis"]["region"] == "lungs"
    assert (out / "figures" / "synthesis-both.png").is_file() and block["figure"].endswith("synthesis-both.png")
    text = (out / "report.md").read_text()
    assert "## Synthetic covid that keeps its hospital (v2-lungs)" in text
    for link in [line.split("](")[1].split(")")[0] for line in text.splitlines() if "](" in line]:
        assert (out / link).is_file(), f"report links a missing file: {link}"
