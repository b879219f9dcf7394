"""The papers' reproductions: their pools and per-image splits, the audit's grouped splits, and
each paper's whole pipeline end to end at tiny scale on the real corpus."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipelines.studies.reproduction import PROTOCOLS, run_reproduction, splits
from pipelines.studies.reproduction.runner import ReproductionError
from pipelines.studies.reproduction.splits import ReproductionDataError

TINY = {"epochs": 1, "head_epochs": 1, "image_size": 32, "batch_size": 32}
TINY_GAN = {"size": 32, "ngf": 8, "n_blocks": 2, "ndf": 8, "iterations": 3, "sample_every": 2,
            "checkpoint_every": 2, "log_every": 1, "n_samples": 2, "realism_every": 0}


@pytest.mark.parametrize("paper, counts", [("makris2020", (112, 112, 112)), ("zebin2020", (142, 176, 142)),
                                           ("luiz", (142, 142, 142))])
def test_pools_hold_the_papers_images(corpus, paper, counts):
    images = splits.pool(PROTOCOLS[paper].pool)
    tally = Counter(r.label for r in images)
    assert (tally["normal"], tally["covid"], tally["pneumonia"]) == counts
    if paper != "makris2020":
        assert all(r.source == "kaggle-paediatric" for r in images if r.label != "covid")


def test_makris_split_is_per_image_and_random_like_the_paper(corpus):
    protocol = PROTOCOLS["makris2020"]
    images = splits.pool(protocol.pool)
    first, second = (splits.protocol_split(protocol, images, k) for k in (0, 1))
    assert sum(r.split == "test" for r in first) == round(0.2 * len(images))
    assert [r.split for r in first] != [r.split for r in second]  # replicates are other random splits
    assert splits.patients_on_both_sides(first) > 0  # the paper's leak, kept in its protocol
    grouped = splits.grouped_split(protocol, images, 0)
    assert splits.patients_on_both_sides(grouped) == 0
    assert 0.15 < sum(r.split == "test" for r in grouped) / len(images) < 0.25


def test_zebin_folds_share_one_test_set_and_cover_the_training_part(corpus):
    protocol = PROTOCOLS["zebin2020"]
    images = splits.pool(protocol.pool)
    folds = [splits.protocol_split(protocol, images, k) for k in range(protocol.folds)]
    tests = {tuple(r.path for r in f if r.split == "test") for f in folds}
    assert len(tests) == 1
    val_paths = [r.path for f in folds for r in f if r.split == "val"]
    assert len(val_paths) == len(set(val_paths)) == sum(r.split != "test" for r in folds[0])


def test_luiz_folds_test_one_fold_and_validate_on_the_unseen_one(corpus):
    protocol = PROTOCOLS["luiz"]
    images = splits.pool(protocol.pool)
    first, second = (splits.protocol_split(protocol, images, k) for k in (0, 1))
    assert [r.path for r in first if r.split == "val"] == [r.path for r in second if r.split == "val"]
    assert not {r.path for r in first if r.split == "test"} & {r.path for r in second if r.split == "test"}
    assert Counter(r.label for r in first if r.split == "test") == Counter({"normal": 13, "covid": 13, "pneumonia": 13})


def test_identical_bytes_stay_on_one_side_of_a_per_image_split(corpus):
    images = splits.pool("zebin")
    twin = images.records[0]
    doubled = images.records + [type(twin)(**{**twin.__dict__, "path": twin.path + "#copy"})]
    for seed in range(5):
        parts = splits.image_parts(doubled, [0.8, 0.2], seed, stratified=True)
        assert parts[0] == parts[-1]


def test_bad_requests_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(ReproductionError, match="unknown paper 'zebin'; choose one of makris2020, zebin2020, luiz"):
        run_reproduction("zebin", out_dir=tmp_path)
    with pytest.raises(ReproductionError, match="--replicates 11: luiz has 1 to 10"):
        run_reproduction("luiz", replicates=11, out_dir=tmp_path)
    with pytest.raises(ReproductionError, match="--lung-gan: makris2020's protocol has no v2"):
        run_reproduction("makris2020", lung_gan=True, out_dir=tmp_path)
    monkeypatch.setenv("CXR_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ReproductionDataError, match="no corpus at .*nowhere.*make fetch"):
        run_reproduction("makris2020", out_dir=tmp_path)


@pytest.mark.integration
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("paper", list(PROTOCOLS))
def test_each_paper_end_to_end_at_tiny_scale(corpus, paper, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative output folder, as the command's default runs/reproduce/<paper>
    out = run_reproduction(paper, replicates=1, overrides=TINY, gan_overrides=TINY_GAN, out_dir=Path(paper),
                           progress=False, log=lambda line: None)
    report = (out / "report.md").read_text()
    results = json.loads((out / "results.json").read_text())
    runs = results["replicates"][0]["runs"]
    assert {"protocol", "grouped", "box", "lungs-removed", "lungs-only", "outline"} <= set(runs)
    assert results["cost"]["training_seconds"] > 0 and "the classifiers trained in " in report
    assert "| accuracy |" in report and "(a) patients grouped" in report and "(b) lungs removed" in report
    assert "efficientnet_lite0" in report and "instead of the paper's" in report
    config = json.loads((out / "runs" / "r0-protocol" / "config.json").read_text())
    assert config["weights"] == "imagenet" and config["unfreeze_blocks"] == 0
    assert config["head"] == PROTOCOLS[paper].classifier["head"]
    assert json.loads((out / "runs" / "r0-box" / "config.json").read_text())["hide_lungs"]
    assert json.loads((out / "runs" / "r0-lungs-only" / "config.json").read_text())["region"] == "lungs-only"
    if paper == "makris2020":
        assert "second-test" in runs and "Second test set" in report
    if paper == "zebin2020":
        trained = (out / "runs" / "r0-v2" / "train_images.csv").read_text()
        held_out = {r.patient_id for r in splits.protocol_split(PROTOCOLS[paper], splits.pool("zebin"), 0)
                    if r.split != "train"}
        synthetic_patients = [line.split(",")[3] for line in trained.splitlines() if ",synthetic," in line]
        assert synthetic_patients and not set(synthetic_patients) & held_out
        assert (out / "progression.png").is_file() and "progression" in report
    again = run_reproduction(paper, replicates=1, overrides=TINY, gan_overrides=TINY_GAN, out_dir=Path(paper),
                             progress=False, log=lambda line: None)  # every finished step is reused
    rerun = json.loads((again / "results.json").read_text())
    assert rerun["summary"] == results["summary"]
    assert rerun["cost"]["training_seconds"] == results["cost"]["training_seconds"]  # kept, not the reuse's


def test_the_paper_profile_offline_fails_at_once_naming_the_backbone_that_needs_no_download(corpus, tmp_path,
                                                                                            monkeypatch):
    import classifier.model.weights as weights

    def offline(name, weights=None):
        raise OSError("Name or service not known")

    monkeypatch.setattr(weights, "get_model", offline)
    with pytest.raises(weights.WeightsError, match="vgg16.*ImageNet weights that need no download: efficientnet_lite0"):
        run_reproduction("zebin2020", "paper", out_dir=tmp_path / "zebin")
    assert not (tmp_path / "zebin").exists()  # nothing was trained or written
