"""Shortcut-proof training: the gradient-reversal layer, the class-conditional source adversary,
and v3 (counterfactual source translations, labels kept), on tiny sets of real images."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from classifier.training.adversary import (AdversaryError, SourceAdversary, adversary_weight, check_sources,
                                  reverse_gradient, sources_per_class)
from classifier.cli import classify_cli
from classifier.config import make_config
from classifier.training.data import SyntheticDataError, build_splits
from classifier.training.train import train_classifier
from cxrdata import CLASSES, Manifest, Record
from pipelines.experiment.counterfactual import make_counterfactual
from runkit import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_GAN = {"size": 32, "ngf": 8, "n_blocks": 2, "ndf": 8, "iterations": 2, "n_samples": 2, "log_every": 1,
            "sample_every": 2, "checkpoint_every": 2}


def record(label: str, source: str, i: int = 0) -> Record:
    return Record(path=f"{source}/{label}{i}.png", label=label, split="train", patient_id=f"p{i}", source=source,
                  sha256="", file=Path("/nowhere"))


def test_gradient_reversal_is_identity_forward_and_minus_weight_backward():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.equal(x.grad, -0.25 * w)  # d/dx of sum(w·x) is w; reversed and scaled
    assert adversary_weight(2.0, 0, 4) == 0.5 and adversary_weight(2.0, 3, 4) == adversary_weight(2.0, 9, 4) == 2.0
    assert adversary_weight(2.0, 0, 0) == 2.0


def test_heads_only_for_classes_with_two_real_sources_and_the_loss_is_their_cross_entropy():
    manifest = Manifest([record("normal", "nih"), record("normal", "ieee8023"), record("pneumonia", "nih"),
                         record("covid", "ieee8023"), record("covid", "figure1"), record("covid", "synthetic")])
    sources = sources_per_class(manifest)
    assert sources == {"normal": ["ieee8023", "nih"], "covid": ["figure1", "ieee8023"]}
    torch.manual_seed(0)
    adversary = SourceAdversary(5, sources).double()
    labels = torch.tensor([CLASSES.index(r.label) for r in manifest])
    targets = adversary.source_targets([r.label for r in manifest], [r.source for r in manifest])
    assert targets.tolist() == [1, 0, -1, 1, 0, -1]  # pneumonia has one source; synthetic never counts
    features = torch.randn(6, 5, dtype=torch.float64)
    loss, seen, correct = adversary(features, labels, targets)
    expected = (F.cross_entropy(adversary.heads["normal"](features[:2]), targets[:2], reduction="sum")
                + F.cross_entropy(adversary.heads["covid"](features[3:5]), targets[3:5], reduction="sum"))
    assert seen == 4 and 0 <= correct <= 4 and torch.allclose(loss, expected, rtol=0, atol=1e-12)
    with pytest.raises(AdversaryError, match="every class comes from a single source"):
        check_sources(Manifest([record("normal", "nih"), record("covid", "ieee8023")]), "one-source.csv")


def tiny_classifier(dataset: Path, **changes):
    return make_config(dataset=str(dataset), image_size=32, batch_size=4, seed=5, cross_source=False,
                       **{"epochs": 3, **changes})


def test_the_adversary_trains_logs_and_resumes_exactly(mixed_sources_csv, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_classifier(mixed_sources_csv, source_adversary=1.0, adversary_warmup=2)
    straight = train_classifier(config, tmp_path / "straight", progress=False)
    history = checkpoint.load(straight / "last.pt")["history"]
    assert [h["adversary_weight"] for h in history] == [0.5, 1.0, 1.0]
    assert all(0 <= h["adversary_accuracy"] <= 1 and h["adversary_loss"] > 0 for h in history)
    events = EventAccumulator(str(straight)).Reload()
    assert {"adversary/loss", "adversary/accuracy", "adversary/weight", "lr/adversary"} <= set(events.Tags()["scalars"])

    train_classifier(tiny_classifier(mixed_sources_csv, source_adversary=1.0, adversary_warmup=2, epochs=2),
                     tmp_path / "split", progress=False)
    resumed = train_classifier(config, tmp_path / "split", resume=True, progress=False)
    a, b = checkpoint.load(straight / "last.pt"), checkpoint.load(resumed / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["adversary"][k], b["adversary"][k]) for k in a["adversary"])
    assert "adversary" not in checkpoint.load(straight / "best.pt")  # the served model is the classifier alone


def test_bad_shortcut_settings_are_one_line_errors_before_training(cxr3, mixed_sources_csv, tmp_path):
    one_source = tmp_path / "one-source.csv"
    Manifest([r for r in Manifest.read(mixed_sources_csv) if r.source == "nih" or r.label == "covid"],
             name="one").write(one_source, extra_columns=("image_id",))
    runner = CliRunner()
    cases = [(["--dataset", str(one_source), "--source-adversary", "1"], "every class comes from a single source"),
             (["--dataset", str(mixed_sources_csv), "--source-adversary", "-1"], "source_adversary must be >= 0"),
             (["--dataset", str(mixed_sources_csv), "--aug", "v3", "--counterfactual-set", str(tmp_path / "none.csv")],
              "counterfactual manifest not found; v3 needs a source-translation CycleGAN's images: run `make "
              "counterfactual`")]
    for args, message in cases:
        result = runner.invoke(classify_cli, ["train", *args, "--out", str(tmp_path / "run"), "--epochs", "1"])
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_v3_adds_counterfactuals_with_their_parents_labels_to_training_only(mixed_sources_csv, tmp_path):
    out = make_counterfactual(str(mixed_sources_csv), tmp_path / "cf", gan_run=tmp_path / "gan", gan=TINY_GAN,
                              per_class=2, progress=False, log=lambda *a: None)
    made = Manifest.read(out / "manifest.csv", root=out)
    parents = {r.path: r for r in Manifest.read(mixed_sources_csv)}
    parts = {}
    for r in made:
        parent = parents[r.extra["parent_path"]]
        assert r.label == parent.label and r.split == parent.split == "train" and r.file.is_file()
        parts.setdefault(r.path.split("/")[0], set()).add((parent.label, parent.source))
    assert parts == {"nih-normal-to-other": {("normal", "nih")}, "nih-pneumonia-to-other": {("pneumonia", "nih")},
                     "covid-to-nih": {("covid", "ieee8023")}}
    said = []
    assert make_counterfactual(str(mixed_sources_csv), out, gan_run=tmp_path / "gan", gan=TINY_GAN, per_class=2,
                               progress=False, log=said.append) == out
    assert said[-1].endswith(": reused")  # made the same way: not made again
    with pytest.raises(FileExistsError, match="made otherwise; pass --overwrite"):
        make_counterfactual(str(mixed_sources_csv), out, gan_run=tmp_path / "gan", gan=TINY_GAN, per_class=1,
                            progress=False, log=lambda *a: None)
    config = tiny_classifier(mixed_sources_csv, aug="v3", counterfactual_manifest=str(out / "manifest.csv"), epochs=1)
    run = train_classifier(config, tmp_path / "v3", progress=False)
    with open(run / "train_images.csv", newline="") as fh:
        trained = list(csv.DictReader(fh))
    synthetic = [row for row in trained if row["source"] == "synthetic"]
    real_train = Manifest.read(mixed_sources_csv).select(split="train")  # 3 per (label, source) with the corpus
    assert len(synthetic) == len(made) == 6 and len(trained) == len(real_train) + 6
    with open(run / "predictions.csv", newline="") as fh:
        assert all(row["source"] != "synthetic" for row in csv.DictReader(fh))  # never tested on
    config = tiny_classifier(mixed_sources_csv, aug="v3", counterfactual_manifest=str(out / "manifest.csv"),
                             counterfactual_per_class=1)
    smaller = [r for r in build_splits(config).train if r.source == "synthetic"]
    first_of_each = {}
    for r in made:
        first_of_each.setdefault(r.label, r.path)
    assert sorted(r.path for r in smaller) == sorted(first_of_each.values())  # nested: the set's first per label
    with pytest.raises(SyntheticDataError, match=r"--counterfactual-per-class 3: .*has only 2 covid, 2 normal, "
                                                 r"2 pneumonia image\(s\)"):
        build_splits(tiny_classifier(mixed_sources_csv, aug="v3", counterfactual_manifest=str(out / "manifest.csv"),
                                     counterfactual_per_class=3))
