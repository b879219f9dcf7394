"""Statistics for comparing two classifiers on the same test images.

* :func:`mcnemar_exact`: McNemar's exact test on the discordant pairs (Dietterich 1998).
* :func:`paired_bootstrap`: a percentile interval of the accuracy difference, resampling test
  images, or whole patients when ``groups`` is given (images of one patient are not independent);
  :func:`bootstrap_ratio_difference` does the same for recall and precision differences, and
  :func:`bootstrap_ratio` for one model's accuracy, recall or precision.
* :func:`spread`: mean, standard deviation and range over seeds or folds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from math import comb

import numpy as np


@dataclass(frozen=True)
class McNemar:
    only_a_right: int  # discordant pairs where A is right and B wrong
    only_b_right: int
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


def mcnemar_exact(correct_a, correct_b) -> McNemar:
    """Two-sided exact McNemar test: under H0 each discordant pair favours A or B with p = ½."""
    a, b = _as_bool_pair(correct_a, correct_b)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n, k = only_a + only_b, min(only_a, only_b)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2 ** n if n else 0.5
    return McNemar(only_a, only_b, min(1.0, 2 * tail))


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    level: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(correct_a, correct_b, *, groups=None, n_resamples: int = 10_000,
                     seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of accuracy(B) − accuracy(A) on the same images.

    With ``groups`` (e.g. patient ids) whole groups are resampled, so correlated images of one
    patient do not narrow the interval.
    """
    a, b = _as_bool_pair(correct_a, correct_b)
    ones = np.ones(len(a))
    return bootstrap_ratio_difference(a, ones, b, ones, groups=groups, n_resamples=n_resamples,
                                      seed=seed, level=level)


def bootstrap_ratio_difference(num_a, den_a, num_b, den_b, *, groups=None, n_resamples: int = 10_000,
                               seed: int = 0, level: float = 0.95, chunk: int = 1000) -> Interval:
    """Percentile bootstrap interval of Σnum_b/Σden_b − Σnum_a/Σden_a over resampled rows.

    Accuracy, recall and precision differences are all of this form (e.g. covid recall:
    ``num`` = correct and truly covid, ``den`` = truly covid). Rows of one group are resampled
    together. A resample whose denominator is zero is skipped.
    """
    columns = np.stack([np.asarray(c, dtype=float) for c in (num_a, den_a, num_b, den_b)], axis=1)
    if len(columns) == 0:
        raise ValueError("a bootstrap needs at least one test image")
    keys = np.arange(len(columns)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    n_groups = int(keys.max()) + 1
    sums = np.zeros((n_groups, 4))
    np.add.at(sums, keys, columns)
    rng = np.random.default_rng(seed)
    deltas = []
    for start in range(0, n_resamples, chunk):
        counts = rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=min(chunk, n_resamples - start))
        totals = counts @ sums
        valid = (totals[:, 1] > 0) & (totals[:, 3] > 0)
        deltas.append(totals[valid, 2] / totals[valid, 3] - totals[valid, 0] / totals[valid, 1])
    deltas = np.concatenate(deltas)
    total = sums.sum(axis=0)
    if total[1] == 0 or total[3] == 0 or len(deltas) == 0:
        raise ValueError("a ratio with an empty denominator cannot be bootstrapped (e.g. no image of that class)")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return Interval(float(total[2] / total[3] - total[0] / total[1]), float(low), float(high), level)


def bootstrap_ratio(num, den, *, groups=None, n_resamples: int = 10_000, seed: int = 0,
                    level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of Σnum/Σden (an accuracy, a recall, a precision), rows of one
    group resampled together: :func:`bootstrap_ratio_difference` against a zero ratio."""
    zeros = np.zeros(len(num))
    return bootstrap_ratio_difference(zeros, np.ones(len(num)), num, den, groups=groups, n_resamples=n_resamples,
                                      seed=seed, level=level)


def spread(values) -> dict:
    """Mean, sample standard deviation, min and max of per-seed (or per-fold) values."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()), "n": int(len(values))}


def _as_bool_pair(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired results must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    return a, b
