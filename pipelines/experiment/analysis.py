"""Numbers of the experiment, from the runs' own files (predictions.csv, metrics.json).

Every figure in the report is computed here from files in the experiment folder, so each one
traces back to a file.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

import classifier.evaluation.crosssource as crosssource
from runkit.intervals import wilson_interval
from cxrdata import CLASSES
from runkit.rundir import read_json

from pipelines.experiment.stats import bootstrap_ratio_difference, mcnemar_exact, spread

COVID = crosssource.COVID
CROSS_SOURCE = "cross_source.csv"


def read_predictions(run_dir: Path, name: str = "predictions.csv") -> dict[str, np.ndarray]:
    """A run's ``predictions.csv`` (or ``cross_source.csv``) as arrays: path, patient_id,
    source, true, predicted (class names)."""
    with open(Path(run_dir) / name, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {key: np.array([r[key] for r in rows]) for key in ("path", "patient_id", "source", "true", "predicted")}


def paired(v1: dict, v2: dict, where: str) -> None:
    """Raise unless two prediction sets cover the same test images in the same order."""
    if not np.array_equal(v1["path"], v2["path"]):
        raise ValueError(f"{where}: v1 and v2 were evaluated on different test images; they cannot be paired")


def headline(predictions: dict[str, np.ndarray]) -> dict:
    """Accuracy with its Wilson interval and the covid recall and precision of one run."""
    right = predictions["true"] == predictions["predicted"]
    is_covid, said_covid = predictions["true"] == COVID, predictions["predicted"] == COVID
    low, high = wilson_interval(int(right.sum()), len(right))
    return {"n": int(len(right)), "accuracy": float(right.mean()), "accuracy_ci95": [low, high],
            "covid_recall": _ratio((right & is_covid).sum(), is_covid.sum()),
            "covid_precision": _ratio((right & said_covid).sum(), said_covid.sum())}


def _ratio(num, den) -> float | None:
    return float(num / den) if den else None


def pool(pairs: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """v1's and v2's prediction arrays, each concatenated over replicates."""
    return tuple({k: np.concatenate([pair[i][k] for pair in pairs]) for k in pairs[0][i]} for i in (0, 1))


def delta_statistics(pairs: list[tuple[dict, dict]], seed: int = 0) -> dict:
    """Pooled v2 − v1 statistics over replicates (rows of one patient resampled together).

    With seeds on one split, each test image appears once per seed and the estimate is the
    mean over seeds; with folds, each image appears once.
    """
    v1, v2 = pool(pairs)
    right1, right2 = v1["true"] == v1["predicted"], v2["true"] == v2["predicted"]
    groups = v1["patient_id"]
    is_covid = v1["true"] == COVID
    ones = np.ones(len(right1))
    out = {
        "accuracy": bootstrap_ratio_difference(right1, ones, right2, ones, groups=groups, seed=seed).as_dict(),
        "mcnemar": mcnemar_exact(right1, right2).as_dict(),
        "covid_recall": bootstrap_ratio_difference(right1 & is_covid, is_covid, right2 & is_covid, is_covid,
                                                   groups=groups, seed=seed).as_dict(),
    }
    said1, said2 = v1["predicted"] == COVID, v2["predicted"] == COVID
    try:
        out["covid_precision"] = bootstrap_ratio_difference(right1 & said1, said1, right2 & said2, said2,
                                                            groups=groups, seed=seed).as_dict()
    except ValueError:  # neither model ever predicted covid
        out["covid_precision"] = None
    return out


def per_replicate(names: list[str], pairs: list[tuple[dict, dict]]) -> list[dict]:
    rows = []
    for name, (a, b) in zip(names, pairs):
        h1, h2 = headline(a), headline(b)
        rows.append({"replicate": name, "v1": h1, "v2": h2, "delta_accuracy": h2["accuracy"] - h1["accuracy"]})
    return rows


def across(rows: list[dict]) -> dict:
    """Mean and spread over replicates of each model's accuracy and of the paired difference."""
    return {"v1_accuracy": spread([r["v1"]["accuracy"] for r in rows]),
            "v2_accuracy": spread([r["v2"]["accuracy"] for r in rows]),
            "delta_accuracy": spread([r["delta_accuracy"] for r in rows])}


def chance_level(predictions: dict[str, np.ndarray]) -> float:
    """Accuracy of always answering the test set's most common class."""
    _, counts = np.unique(predictions["true"], return_counts=True)
    return float(counts.max() / counts.sum())


def lungs_hidden_verdict(predictions: dict[str, np.ndarray], margin: float = 0.10) -> dict:
    """Whether a model that never sees the lungs still beats chance (then the data lets it cheat)."""
    result = headline(predictions)
    chance = chance_level(predictions)
    low = result["accuracy_ci95"][0]
    if low > chance + margin:
        verdict = ("far above chance: the images carry label information outside the lungs "
                   "(source, markers, borders); the data lets a model cheat")
    elif low > chance:
        verdict = "above chance: some label information lies outside the lungs"
    else:
        verdict = "not distinguishable from chance: no sign of shortcuts outside the lungs"
    return {**result, "chance": chance, "verdict": verdict}


def mean_border_share(run_dirs: list[Path]) -> dict:
    """Mean Grad-CAM border share over runs, with the border's share of the image area."""
    summaries = [read_json(Path(d) / "gradcam.json") for d in run_dirs]
    shares = [s["mean_border_share"] for s in summaries if s["mean_border_share"] is not None]
    by_class = {c: [s["mean_border_share_by_true_class"][c] for s in summaries
                    if s["mean_border_share_by_true_class"].get(c) is not None] for c in CLASSES}
    return {"mean": float(np.mean(shares)) if shares else None,
            "by_true_class": {c: float(np.mean(v)) if v else None for c, v in by_class.items()},
            "border_area": summaries[0]["border_area"], "band": summaries[0]["band"]}


def out_of_source(names: list[str], run_pairs: list[tuple[Path, Path]], seed: int = 0) -> dict | str:
    """v1 and v2's out-of-source covid false-positive rates per replicate, their mean ± sd, and
    the pooled paired difference v2 − v1 with a bootstrap interval over out-of-source patients;
    or why it was not measured."""
    rows, pooled = [], []
    for name, (run1, run2) in zip(names, run_pairs):
        if not ((run1 / CROSS_SOURCE).is_file() and (run2 / CROSS_SOURCE).is_file()):
            return read_json(run1 / "metrics.json").get("cross_source") or "no cross_source.csv in the runs"
        a, b = read_predictions(run1, CROSS_SOURCE), read_predictions(run2, CROSS_SOURCE)
        paired(a, b, name)
        pooled.append((a, b))
        rows.append({"replicate": name, "v1": crosssource.covid_false_positive(a["true"], a["predicted"]),
                     "v2": crosssource.covid_false_positive(b["true"], b["predicted"])})
    v1, v2 = pool(pooled)
    negative = v1["true"] != COVID
    delta = bootstrap_ratio_difference((v1["predicted"] == COVID) & negative, negative,
                                       (v2["predicted"] == COVID) & negative, negative,
                                       groups=v1["patient_id"], seed=seed).as_dict()
    return {"per_replicate": rows, "n": int(negative.sum() // len(rows)),
            "sources": sorted(set(v1["source"].tolist())),
            "v1": spread([r["v1"]["rate"] for r in rows]), "v2": spread([r["v2"]["rate"] for r in rows]),
            "delta": delta}


def false_positive(metrics: dict) -> dict | None:
    """A run's out-of-source covid false-positive rate from its metrics.json, if measured."""
    block = metrics.get("cross_source")
    return block["covid_false_positive"] if isinstance(block, dict) else None


def per_source(pairs: list[tuple[dict, dict]]) -> dict:
    """Per-source test metrics of v1 and v2, pooled over replicates (a within-source accuracy
    needs enough images of each class in every replicate, not only pooled)."""
    minimum = crosssource.MIN_PER_CLASS * len(pairs)
    return {model: crosssource.per_source(predictions["true"], predictions["predicted"], predictions["source"],
                                          min_per_class=minimum)
            for model, predictions in zip(("v1", "v2"), pool(pairs))}
