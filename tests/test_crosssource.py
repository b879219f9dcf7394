"""The out-of-source set and its numbers: which corpus images count, and every rate checked
against direct counts and the Wilson formula."""
from __future__ import annotations

import numpy as np
import pytest

from classifier.evaluation.crosssource import (corpus_manifest, covid_false_positive, out_of_source, per_source,
                                    predicted_distribution, source_caveat, source_mix)
from runkit.intervals import wilson_interval


def test_cxr3_out_of_source_images_are_the_284_paediatric_ones(corpus, cxr3):
    images = out_of_source(corpus_manifest(), cxr3, cxr3.select(split="train"))
    assert len(images) == 284
    assert {r.source for r in images} == {"kaggle-paediatric"}
    assert sorted(r.label for r in images).count("normal") == 142
    assert not {r.sha256 for r in images} & {r.sha256 for r in cxr3}


def test_makris_out_of_source_images_are_every_other_source_outside_the_split(corpus, makris):
    images = out_of_source(corpus_manifest(), makris, makris.select(split="train"))
    assert {"nih", "figure1", "ieee8023"} <= {r.source for r in images}  # none trains normal there
    assert sum(r.source == "nih" for r in images) == 1000
    assert not {r.sha256 for r in images} & {r.sha256 for r in makris}


def test_rates_match_direct_counts():
    true = np.array(["normal"] * 4 + ["pneumonia"] * 3 + ["covid"] * 2)
    predicted = np.array(["covid", "covid", "normal", "pneumonia", "covid", "pneumonia", "normal", "covid", "normal"])
    sources = np.array(["a"] * 7 + ["b"] * 2)
    fp = covid_false_positive(true, predicted)
    assert (fp["k"], fp["n"]) == (3, 7) and fp["rate"] == pytest.approx(3 / 7)
    assert fp["ci95"] == pytest.approx(list(wilson_interval(3, 7)))
    block = predicted_distribution(true, predicted, sources)
    assert block["sources"]["a"]["normal"]["predicted"]["covid"]["k"] == 2
    assert block["sources"]["a"]["pneumonia"]["predicted"]["pneumonia"]["rate"] == pytest.approx(1 / 3)
    assert set(block["sources"]["b"]) == {"covid"}  # classes without images are not listed
    assert block["accuracy"]["k"] == 3


def test_per_source_reports_within_source_accuracy_only_where_two_classes_have_enough_images():
    true = np.array(["covid"] * 6 + ["pneumonia"] * 5 + ["normal"] * 2 + ["normal"] * 4)
    predicted = np.array(["covid"] * 5 + ["pneumonia"] + ["pneumonia"] * 3 + ["covid"] * 2 + ["normal"] * 6)
    sources = np.array(["ieee"] * 13 + ["nih"] * 4)
    result = per_source(true, predicted, sources)
    within = result["ieee"]["within_source"]
    assert within["classes"] == ["covid", "pneumonia"]  # 2 normals are too few
    assert (within["accuracy"]["k"], within["accuracy"]["n"]) == (8, 11)
    assert "within_source" not in result["nih"]
    assert result["ieee"]["recall"]["normal"]["rate"] == 1.0


def test_the_caveat_says_what_the_runs_own_training_sources_show(cxr3):
    mix = source_mix(cxr3.select(split="train"), leave_out="synthetic")
    assert sum(sum(by.values()) for by in mix.values()) == len(cxr3.select(split="train"))
    text = source_caveat(mix)
    assert "normal" in text and "% nih" in text and "% ieee8023" in text
    assert "come mostly from different sources" in text
    one_source = source_caveat({"normal": {"clinic": 40}, "covid": {"clinic": 30, "synthetic": 5}})
    assert "every class comes mostly from clinic" in one_source and "cxr3" not in one_source
    assert source_mix(cxr3.select(split="train"), leave_out="nih").get("normal", {}).get("nih") is None
