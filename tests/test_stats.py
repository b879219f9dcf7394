"""The comparison statistics against references: scipy's binomial test and hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from pipelines.experiment.stats import mcnemar_exact, paired_bootstrap, spread


@pytest.mark.parametrize("only_a, only_b, both, neither", [(0, 0, 5, 5), (3, 9, 50, 10), (12, 4, 30, 2),
                                                           (1, 0, 9, 0), (20, 20, 0, 0), (0, 7, 3, 3)])
def test_mcnemar_matches_scipy_binomtest(only_a, only_b, both, neither):
    a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
    b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
    result = mcnemar_exact(a, b)
    assert (result.only_a_right, result.only_b_right) == (only_a, only_b)
    n = only_a + only_b
    expected = binomtest(min(only_a, only_b), n, 0.5).pvalue if n else 1.0
    assert result.p_value == pytest.approx(expected, rel=1e-12)


def test_bootstrap_of_identical_differences_is_a_point():
    interval = paired_bootstrap([0] * 10, [1] * 10, n_resamples=200)
    assert (interval.estimate, interval.low, interval.high) == (1.0, 1.0, 1.0)


def test_bootstrap_of_two_images_follows_the_hand_computed_distribution():
    """Differences (1, 0): a resample's mean is 0, ½ or 1 with probability ¼, ½, ¼,
    so the 95 % percentile interval is [0, 1] and the estimate ½."""
    interval = paired_bootstrap([0, 1], [1, 1], n_resamples=20_000, seed=3)
    assert (interval.estimate, interval.low, interval.high) == (0.5, 0.0, 1.0)
    narrow = paired_bootstrap([0, 1], [1, 1], n_resamples=20_000, seed=3, level=0.40)
    assert (narrow.low, narrow.high) == (0.5, 0.5), "the middle 40 % falls inside the ½ atom"


def test_grouped_bootstrap_resamples_whole_patients():
    """Patient p1's five images are right only under B, p2's five right under both. Resampling
    patients gives means 0, ½ or 1 (¼, ½, ¼): interval [0, 1]. Resampling images treats them as
    ten independent results: about [0.2, 0.8]."""
    a = [0] * 5 + [1] * 5
    b = [1] * 10
    groups = ["p1"] * 5 + ["p2"] * 5
    grouped = paired_bootstrap(a, b, groups=groups, n_resamples=5000, seed=1)
    assert (grouped.estimate, grouped.low, grouped.high) == (0.5, 0.0, 1.0)
    ungrouped = paired_bootstrap(a, b, n_resamples=5000, seed=1)
    assert ungrouped.low == pytest.approx(0.2, abs=0.05) and ungrouped.high == pytest.approx(0.8, abs=0.05)


def test_one_image_per_group_equals_the_plain_bootstrap():
    rng = np.random.default_rng(0)
    a, b = rng.random(40) > 0.3, rng.random(40) > 0.4
    assert paired_bootstrap(a, b, groups=[f"p{i:02d}" for i in range(40)], seed=2) == paired_bootstrap(a, b, seed=2)


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="same|one length"):
        mcnemar_exact([1, 0], [1])


def test_spread():
    s = spread([0.8, 0.9, 1.0])
    assert s["mean"] == pytest.approx(0.9) and s["std"] == pytest.approx(0.1) and s["n"] == 3
    assert spread([0.5])["std"] == 0.0


def test_precision_difference_by_hand():
    """Four images, one group each. A predicts covid for images 0, 1 (one right): precision ½.
    B predicts covid for images 0, 2 (both right): precision 1. Estimate ½."""
    from pipelines.experiment.stats import bootstrap_ratio_difference

    right_a, predicted_a = [1, 0, 0, 0], [1, 1, 0, 0]
    right_b, predicted_b = [1, 0, 1, 0], [1, 0, 1, 0]
    interval = bootstrap_ratio_difference(right_a, predicted_a, right_b, predicted_b, n_resamples=2000)
    assert interval.estimate == 0.5
    assert 0.0 <= interval.low <= 0.5 <= interval.high <= 1.0
    with pytest.raises(ValueError, match="empty denominator"):
        bootstrap_ratio_difference([0, 0], [0, 0], [1, 1], [1, 1])


@pytest.mark.parametrize("low, high, p, expected", [
    (0.01, 0.07, 0.01, "v2 did better than v1"),
    (-0.005, 0.079, 0.031, "The evidence is weak"),
    (-0.03, 0.05, 0.40, "within what chance produces"),
    (-0.09, -0.02, 0.002, "v2 did worse than v1"),
])
def test_the_reports_sentence_follows_the_interval_and_the_test(low, high, p, expected):
    from pipelines.experiment.report import plain_sentence

    pooled = {"accuracy": {"estimate": (low + high) / 2, "low": low, "high": high}, "mcnemar": {"p_value": p}}
    assert expected in plain_sentence(pooled, 296, 3)
