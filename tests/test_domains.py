"""CycleGAN domains as filters over the training split, and source translation with labels kept,
on tiny sets of real corpus images."""
from __future__ import annotations


import pytest
import torch
from click.testing import CliRunner

from cxrdata import Manifest
from cyclegan.cli import gan_cli
from cyclegan.config import from_profile
from cyclegan.domains import DomainError, is_label_translation, parse_filter, select_domains, target_label
from cyclegan.train import train
from runkit.checkpoint import load

pytestmark = pytest.mark.usefixtures("one_thread")
SOURCE_DOMAINS = dict(domain_a="source=nih", domain_b="source=ieee8023", labels="normal,pneumonia")
TINY = dict(image_size=32, ngf=8, n_blocks=2, ndf=8, pool_size=2, log_every=1, sample_every=2, checkpoint_every=2,
            n_samples=2, decay_fraction=0.0)


def test_filters_parse_and_restrict():
    assert parse_filter("label=normal", "--domain-a").allowed == {"label": {"normal"}}
    both = parse_filter("source=ieee8023, figure1 ; label=covid,normal", "--domain-b", labels="normal,pneumonia")
    assert both.allowed == {"source": {"ieee8023", "figure1"}, "label": {"normal"}}
    assert is_label_translation("label=normal", "label=covid")
    assert not is_label_translation(SOURCE_DOMAINS["domain_a"], SOURCE_DOMAINS["domain_b"], SOURCE_DOMAINS["labels"])
    assert target_label("normal", "label=covid", True) == "covid"
    assert target_label("pneumonia", "source=ieee8023", False) == "pneumonia"
    for text, message in (("", "empty"), ("colour=red", "'colour=red' is not KEY=VALUE"), ("label", "not KEY=VALUE"),
                          ("label=", "not KEY=VALUE")):
        with pytest.raises(DomainError, match=message):
            parse_filter(text, "--domain-a")
    with pytest.raises(DomainError, match="no label is left"):
        parse_filter("label=covid", "--domain-b", labels="normal,pneumonia")


def test_the_default_domains_are_the_normal_and_covid_training_images(cxr3):
    a, b = select_domains(cxr3, "label=normal", "label=covid")
    assert a.records == cxr3.select(split="train", label="normal").records
    assert b.records == cxr3.select(split="train", label="covid").records


def test_bad_domains_are_named_before_training(mixed_sources_csv, cxr3, tmp_path):
    manifest = Manifest.read(mixed_sources_csv)
    cases = [(("label=tumour", "label=covid"), {}, "--domain-a 'label=tumour': unknown label tumour"),
             (("source=nih", "source=kaggle-paediatric"), {},
              "unknown source kaggle-paediatric; mixed's training split has"),
             (("source=nih;label=covid", "label=normal"), {}, "selects no training images"),
             (("label=normal", "label=covid"), {"batch_size": 4},
              "3 training image(s) in mixed, fewer than a batch (4)"),
             (("source=nih", "label=normal"), {}, "3 image(s) are in both domains")]
    for (domain_a, domain_b), extra, message in cases:
        with pytest.raises(DomainError, match=message.replace("(", r"\(").replace(")", r"\)")):
            select_domains(manifest, domain_a, domain_b, **extra)
    result = CliRunner().invoke(gan_cli, ["train", "--out", str(tmp_path / "g"), "--dataset", str(mixed_sources_csv),
                                          "--domain-b", "source=figure2", "--iterations", "1", "--image-size", "32"])
    assert result.exit_code == 1 and "--domain-b 'source=figure2': unknown source figure2" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "g").exists()


def test_a_source_translation_gan_trains_resumes_exactly_and_keeps_labels(mixed_sources_csv, tmp_path):
    config = from_profile("cpu", dataset=str(mixed_sources_csv), iterations=4, **TINY, **SOURCE_DOMAINS)
    straight = load(train(config, tmp_path / "straight", progress=False) / "checkpoint.pt")
    train(config.replace(iterations=2), tmp_path / "split", progress=False)
    resumed = load(train(config, tmp_path / "split", resume=True, progress=False) / "checkpoint.pt")
    for net in ("G_A", "G_B", "D_A", "D_B"):
        assert all(torch.equal(resumed[net][k], v) for k, v in straight[net].items()), net

    run, runner = tmp_path / "straight", CliRunner()
    nih = runner.invoke(gan_cli, ["synth", "--run", str(run), "--n", "6", "--out", str(tmp_path / "to-ieee"),
                                  "--quiet"])
    covid = runner.invoke(gan_cli, ["synth", "--run", str(run), "--n", "3", "--direction", "b2a",
                                    "--images", "label=covid", "--out", str(tmp_path / "to-nih"), "--quiet"])
    assert nih.exit_code == 0 and covid.exit_code == 0, nih.output + covid.output
    parents = {r.path: r for r in Manifest.read(mixed_sources_csv)}
    for folder, direction in (("to-ieee", "a2b: source=nih → source=ieee8023"),
                              ("to-nih", "b2a: source=ieee8023 → source=nih")):
        made = Manifest.read(tmp_path / folder / "manifest.csv", root=tmp_path / folder)
        for record in made:
            parent = parents[record.extra["parent_path"]]
            assert parent.split == "train" and record.split == "train" and record.source == "synthetic"
            assert record.label == parent.label == record.extra["parent_label"]  # label kept
            assert record.extra["parent_source"] == parent.source and record.extra["direction"] == direction
            assert record.file.parent.name == record.label
        if folder == "to-ieee":
            assert {r.extra["parent_source"] for r in made} == {"nih"}
            assert {r.label for r in made} == {"normal", "pneumonia"}
        else:
            assert {r.label for r in made} == {"covid"}
    bad = runner.invoke(gan_cli, ["synth", "--run", str(run), "--n", "1", "--images", "label=covid;source=nih",
                                  "--out", str(tmp_path / "none")])
    assert bad.exit_code == 1 and "--images 'label=covid;source=nih': selects no training images" in bad.output
