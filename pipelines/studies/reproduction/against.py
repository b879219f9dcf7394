"""Our figures against the paper's: a 95 % interval on each side and a plain verdict.

Ours pool the replicates' test predictions and resample whole patients (Efron's percentile
bootstrap), so replicates that test the same images (Zebin's folds share one test set) count those
images once per resample and do not narrow the interval. At 0 or 100 %, where every resample
agrees and the bootstrap has no width, ours is Wilson's at the number of distinct test images
instead. The paper's is Wilson's at its test size; for a class's precision at the class's test
count, as the papers give no predicted counts.
"""
from __future__ import annotations

import numpy as np

from runkit.intervals import wilson_interval
from cxrdata.manifest import CLASSES

from pipelines.experiment.analysis import delta_statistics, read_predictions
from pipelines.experiment.stats import Interval, bootstrap_ratio
from pipelines.studies.reproduction.protocols import Protocol

CONSISTENT = "consistent with the paper"
BELOW = "below the paper's interval"
ABOVE = "above the paper's interval"
CANNOT_TELL = "cannot tell at this test size"
OTHER_BACKBONES = {"accuracy_resnet50": "ResNet50", "accuracy_efficientnetb0": "EfficientNetB0"}
RULE = ("below (above): our interval lies wholly under (over) the paper's; consistent: each figure lies inside "
        "the other's interval; otherwise the two test sizes cannot tell")


def paper_interval(value: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval a figure allows at the paper's test size."""
    return wilson_interval(round(value * n), n)


def verdict(ours: Interval, paper: float, paper_n: int) -> str:
    """One of :data:`CONSISTENT`, :data:`BELOW`, :data:`ABOVE`, :data:`CANNOT_TELL` (:data:`RULE`)."""
    low, high = paper_interval(paper, paper_n)
    if ours.high < low:
        return BELOW
    if ours.low > high:
        return ABOVE
    if ours.low <= paper <= ours.high and low <= ours.estimate <= high:
        return CONSISTENT
    return CANNOT_TELL


def pooled(runs: list) -> dict[str, np.ndarray]:
    """The test predictions of several runs, concatenated."""
    predictions = [read_predictions(run) for run in runs]
    return {key: np.concatenate([p[key] for p in predictions]) for key in predictions[0]}


def ratio_interval(num: np.ndarray, den: np.ndarray, predictions: dict[str, np.ndarray], seed: int = 0) -> Interval:
    """Σnum/Σden over the pooled rows with its patient-bootstrap interval, or Wilson's at the distinct
    images of the denominator where every resample agrees (see the module's docstring)."""
    found = bootstrap_ratio(num, den, groups=predictions["patient_id"], seed=seed)
    if found.low < found.high:
        return found
    distinct = len(set(predictions["path"][den.astype(bool)]))
    low, high = wilson_interval(round(found.estimate * distinct), distinct)
    return Interval(found.estimate, low, high)


def intervals(predictions: dict[str, np.ndarray], seed: int = 0) -> dict:
    """Accuracy and each class's recall and precision, with their intervals (:func:`ratio_interval`)."""
    true, said = predictions["true"], predictions["predicted"]
    right = true == said
    out = {"accuracy": ratio_interval(right, np.ones(len(right)), predictions, seed), "recall": {}, "precision": {}}
    for c in CLASSES:
        for metric, den in (("recall", true == c), ("precision", said == c)):
            out[metric][c] = ratio_interval(right & den, den, predictions, seed) if den.any() else None
    return out


def _row(figure: str, paper: float, paper_n: int, ours: Interval | None) -> dict:
    low, high = paper_interval(paper, paper_n)
    return {"figure": figure, "paper": {"estimate": paper, "low": low, "high": high}, "paper_n": paper_n,
            "ours": ours.as_dict() if ours else None,
            "verdict": verdict(ours, paper, paper_n) if ours else "not measured"}


def against_paper(protocol: Protocol, runs: dict[str, list]) -> dict:
    """Every figure of the paper that we measure, each side's interval and the verdict; and v2 − v1
    paired on the shared test images (bootstrap over patients, exact McNemar). ``runs``: the run
    folders of each kind (protocol, v2) over the replicates."""
    figures = protocol.figures
    ours = {kind: intervals(pooled(folders)) for kind, folders in runs.items() if kind in ("protocol", "v2")}
    rows = [_row("accuracy", figures["accuracy"], figures["test_images"], ours["protocol"]["accuracy"])]
    if "accuracy_v2" in figures and "v2" in ours:
        rows.append(_row("accuracy, v2", figures["accuracy_v2"], figures["test_images"], ours["v2"]["accuracy"]))
    for key, name in OTHER_BACKBONES.items():  # the paper's other backbones against our one protocol
        if key in figures:
            rows.append(_row(f"accuracy, the paper's {name}", figures[key], figures["test_images"],
                             ours["protocol"]["accuracy"]))
    for suffix, kind in (("", "protocol"), ("_v2", "v2")):
        for metric in ("precision", "recall"):
            for c, value in figures.get(metric + suffix, {}).items():
                if kind in ours:
                    rows.append(_row(f"{c} {metric}" + (", v2" if suffix else ""), value,
                                     figures["class_test_images"][c], ours[kind][metric][c]))
    out = {"rule": RULE, "rows": rows}
    for kind in ("v2", "v2-lungs"):
        if kind in runs:
            pairs = [(read_predictions(a), read_predictions(b)) for a, b in zip(runs["protocol"], runs[kind])]
            out[f"{kind}_minus_v1"] = {**delta_statistics(pairs),
                                       "test_rows": int(sum(len(a["true"]) for a, _ in pairs))}
    return out
