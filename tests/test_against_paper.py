"""A reproduction's figures against the paper's: each side's interval and the verdict."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from runkit.intervals import wilson_interval
from pipelines.experiment.stats import Interval, bootstrap_ratio
from pipelines.studies.reproduction import PROTOCOLS
from pipelines.studies.reproduction.against import (ABOVE, BELOW, CANNOT_TELL, CONSISTENT, against_paper,
                                                    intervals, paper_interval, pooled, verdict)
from pipelines.studies.reproduction.report import deviations, notes_markdown
from pipelines.studies.reproduction.runner import classifier_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ours, expected", [
    (Interval(0.80, 0.75, 0.83), BELOW),  # wholly under the paper's [84.4, 93.8]
    (Interval(0.97, 0.95, 0.99), ABOVE),
    (Interval(0.90, 0.86, 0.94), CONSISTENT),
    (Interval(0.95, 0.88, 0.99), CANNOT_TELL),  # holds the paper's 90, but 95 lies outside its interval
])
def test_the_verdict_follows_the_two_intervals(ours, expected):
    assert paper_interval(0.90, 160) == wilson_interval(144, 160)
    assert verdict(ours, 0.90, 160) == expected


def test_replicates_that_share_a_test_set_do_not_narrow_the_interval():
    right = np.r_[np.ones(86), np.zeros(5)]  # 86 of 91, Zebin's one test set
    patients = np.arange(91)
    once = bootstrap_ratio(right, np.ones(91), groups=patients)
    thrice = bootstrap_ratio(np.tile(right, 3), np.ones(273), groups=np.tile(patients, 3))
    naive = bootstrap_ratio(np.tile(right, 3), np.ones(273))  # each row on its own: the wrong way
    assert once.estimate == thrice.estimate == pytest.approx(86 / 91)
    assert thrice.high - thrice.low == pytest.approx(once.high - once.low, abs=0.01)
    assert naive.high - naive.low < 0.7 * (thrice.high - thrice.low)
    low, high = wilson_interval(86, 91)
    assert once.low == pytest.approx(low, abs=0.03) and once.high == pytest.approx(high, abs=0.03)


def _predictions(folder: Path, true: list[str], predicted: list[str]) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "predictions.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "patient_id", "source", "true", "predicted"])
        writer.writerows([f"{i}.png", f"p{i}", "s", t, p] for i, (t, p) in enumerate(zip(true, predicted)))
    return folder


def test_every_figure_of_the_paper_gets_a_row_and_v2_is_paired(tmp_path):
    true = ["covid"] * 40 + ["normal"] * 60 + ["pneumonia"] * 60
    v1 = _predictions(tmp_path / "v1", true, true[:150] + ["covid"] * 10)
    v2 = _predictions(tmp_path / "v2", true, true)
    against = against_paper(PROTOCOLS["zebin2020"], {"protocol": [v1], "v2": [v2]})
    rows = {row["figure"]: row for row in against["rows"]}
    assert {"accuracy", "accuracy, v2", "covid precision", "covid precision, v2",
            "accuracy, the paper's EfficientNetB0"} <= set(rows)
    assert rows["accuracy"]["ours"]["estimate"] == pytest.approx(150 / 160)
    assert rows["covid precision"]["ours"]["estimate"] == pytest.approx(40 / 50)
    assert rows["accuracy, v2"]["verdict"] == ABOVE  # 100 % against the paper's 90 [84.4, 93.8]
    delta = against["v2_minus_v1"]
    assert delta["accuracy"]["estimate"] == pytest.approx(10 / 160)
    assert delta["mcnemar"]["only_b_right"] == 10 and delta["mcnemar"]["only_a_right"] == 0


def test_v2_lungs_is_paired_with_v1_as_v2_is(tmp_path):
    true = ["covid"] * 40 + ["normal"] * 60 + ["pneumonia"] * 60
    v1 = _predictions(tmp_path / "v1", true, true)
    v2 = _predictions(tmp_path / "v2", true, true)
    lungs = _predictions(tmp_path / "v2-lungs", true, ["normal"] * 5 + true[5:])
    against = against_paper(PROTOCOLS["zebin2020"], {"protocol": [v1], "v2": [v2], "v2-lungs": [lungs]})
    delta = against["v2-lungs_minus_v1"]
    assert delta["accuracy"]["estimate"] == pytest.approx(-5 / 160)
    assert delta["mcnemar"]["only_a_right"] == 5 and delta["test_rows"] == 160
    assert against["v2_minus_v1"]["accuracy"]["estimate"] == 0


def test_the_deviations_come_from_the_profile_and_the_docs_list_them_all():
    zebin = PROTOCOLS["zebin2020"]
    settings = classifier_settings(zebin, "cpu", {})
    changed = dataclasses.replace(zebin, deviations=zebin.deviations + ("a new deviation",))
    assert "a new deviation" in deviations(changed, settings, 3)
    assert any("3 of the paper's 5 CV folds" in d for d in deviations(zebin, settings, 3))
    assert not any("CV folds" in d for d in deviations(zebin, settings, 5))
    docs = (REPO / "docs" / "reproduction.md").read_text(encoding="utf-8")
    for protocol in PROTOCOLS.values():  # docs/reproduction.md prints what the reports print
        assert notes_markdown(protocol, classifier_settings(protocol, "cpu", {}), protocol.replicates) in docs


def test_a_perfect_score_gets_wilsons_interval_at_the_distinct_images_not_a_point(tmp_path):
    true = ["covid"] * 26 + ["normal"] * 20 + ["pneumonia"] * 22
    runs = [_predictions(tmp_path / f"r{k}", true, true) for k in range(3)]  # three replicates, one test set
    covid = intervals(pooled(runs))["recall"]["covid"]
    assert covid.estimate == 1 and (covid.low, covid.high) == pytest.approx(wilson_interval(26, 26))
    assert verdict(covid, 0.96, 26) == CANNOT_TELL  # not 'above': 26 of 26 cannot tell 100 from 96
