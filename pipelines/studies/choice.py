"""Choose v3's images per label and the source adversary's weight on the validation split.

The rule, written down before the runs (docs/results/2026-11-generalisation.md): every cell of the grid
:data:`~.mitigations.CHOICE_COUNTS` × :data:`~.mitigations.CHOICE_WEIGHTS` is trained on top of the
default (framing) over the seeds; its score is the mean over seeds of (validation accuracy +
validation ieee8023 covid-vs-pneumonia accuracy) / 2. The best score wins, except that a cell
within :data:`TIE` of it with fewer added images, then a smaller weight, wins instead (the simpler
model). Nothing the rule reads comes from the test split or the paediatric images; their numbers
are tabulated beside it for the reader, after the choice.
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from classifier.evaluation.evaluate_external import evaluate_run
from runkit.rundir import is_finished, read_json, write_json

from pipelines.studies.mitigations import (CHOICE_COUNTS, CHOICE_WEIGHTS, VARIANTS, WITHIN, choice_variant, measure,
                                           train_variant)
from pipelines.experiment.stats import spread
from runkit.formatting import markdown_table, mean_sd

TIE = 0.01  # one point of score


def validation_scores(run_dir: Path, dataset: str, progress: bool = False) -> dict:
    """Validation accuracy and ieee8023 covid-vs-pneumonia accuracy of a finished run's best model
    (evaluated once, into ``<run>-val`` beside it)."""
    out = run_dir.parent / f"{run_dir.name}-val"
    if not is_finished(out):
        evaluate_run(run_dir, dataset, out, split="val", overwrite=True, progress=progress)
    metrics = read_json(out / "metrics.json")
    within = metrics["per_source"].get(WITHIN, {}).get("within_source")
    if within is None:
        raise ValueError(f"{out}: the validation split has no {WITHIN} images of two classes; the rule "
                         "cannot be applied to this dataset")
    return {"val_accuracy": metrics["test"]["accuracy"], "val_within_source_accuracy": within["accuracy"]["rate"]}


def validation_spreads(scores: list[dict]) -> dict:
    """What the rules read, over seeds: validation accuracy, within-source accuracy and the score
    (their mean)."""
    return {"val_accuracy": spread([s["val_accuracy"] for s in scores]),
            "val_within_source_accuracy": spread([s["val_within_source_accuracy"] for s in scores]),
            "score": spread([(s["val_accuracy"] + s["val_within_source_accuracy"]) / 2 for s in scores])}


NOT_READ_BY_THE_RULES = ("out_of_source_covid_fp", "test_accuracy", "covid_recall", "within_source_accuracy")


def scored(runs: list[Path], dataset: str) -> dict:
    """What a rule reads of finished runs (their validation scores over seeds) and, kept apart for
    the reader, what it may not read (the test split and the out-of-source images)."""
    test_side = measure(runs)
    return {"runs": [str(r) for r in runs], **validation_spreads([validation_scores(run, dataset) for run in runs]),
            "not_used_by_the_rule": {key: test_side[key] for key in NOT_READ_BY_THE_RULES}}


def write_choice(out_dir: Path, result: dict, table) -> dict:
    """``choice.json`` and ``choice.md`` (``table(result)``) in ``out_dir``; returns ``result``."""
    write_json(out_dir / "choice.json", result)
    (out_dir / "choice.md").write_text(table(result), encoding="utf-8")
    return result


def choose(cells: dict) -> str:
    """The winning cell name of ``cells`` (name → ``{"count", "weight", "score": {"mean"}}``)."""
    best = max(c["score"]["mean"] for c in cells.values())
    near = [name for name, c in cells.items() if c["score"]["mean"] >= best - TIE]
    added = {name: cells[name]["count"] or float("inf") for name in near}  # 0 means the whole set
    return min(near, key=lambda name: (added[name], cells[name]["weight"], -cells[name]["score"]["mean"]))


def run_choice(settings: dict, seeds: tuple[int, ...], out_dir: Path, overwrite: bool = False, log=print) -> dict:
    """Train the grid, score it on validation, choose; write ``choice.json`` and ``choice.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = settings.get("dataset", "cxr3")
    cells = {}
    grid = [(count, weight) for count in CHOICE_COUNTS for weight in CHOICE_WEIGHTS]
    for count, weight in tqdm(grid, desc="grid cells", unit="cell"):
        name = choice_variant(count, weight)
        runs = [train_variant(out_dir, name, seed, settings, overwrite, log) for seed in seeds]
        cells[name] = {"count": count, "weight": weight, **scored(runs, dataset)}
    chosen = choose(cells)
    return write_choice(out_dir, {"settings": settings, "seeds": list(seeds), "tie": TIE, "chosen": chosen,
                                  "chosen_settings": VARIANTS[chosen], "cells": cells}, table)


def table(result: dict) -> str:
    ms = mean_sd
    rows = []
    for name, c in result["cells"].items():
        t = c["not_used_by_the_rule"]
        mark = " **(chosen)**" if name == result["chosen"] else ""
        rows.append([f"{name}{mark}", c["count"] or "all", f"{c['weight']:g}", ms(c["val_accuracy"]),
                     ms(c["val_within_source_accuracy"]), ms(c["score"]), ms(t["test_accuracy"]),
                     ms(t["covid_recall"]), ms(t["out_of_source_covid_fp"])])
    lines = markdown_table(["cell", "per label", "weight", "val accuracy %", "val ieee8023 covid vs pneumonia %",
                            "score %", "(test) accuracy %", "(test) covid recall %",
                            "(paediatric) out-of-source covid FP %"], rows)
    return "\n".join(lines) + (f"\n\nSeeds {', '.join(map(str, result['seeds']))}; score = (val accuracy + val "
                               f"within-source accuracy) / 2, mean ± sd over seeds; ties within "
                               f"{100 * result['tie']:g} point go to fewer images, then a smaller weight. The "
                               "columns in brackets are not read by the rule.\n")
