"""Should the ``cpu`` profile's classifier be EfficientNet-Lite0 with ImageNet weights rather than
resnet18 from scratch? (It became the default by this rule: docs/reproduction.md.)

The rule, written down before the runs (docs/reproduction.md): each candidate is trained on the
demo's settings over the seeds; its score is the mean over seeds of (validation accuracy +
validation ieee8023 covid-vs-pneumonia accuracy) / 2 (:func:`.choice.validation_scores`). The
challenger wins when its score beats the default's by more than :data:`MARGIN` and its mean
training time is at most :data:`MAX_SLOWDOWN` times the default's. Test-split and paediatric
numbers are tabulated beside it, after the choice.
"""
from __future__ import annotations

from pathlib import Path

from classifier.config import LITE0_IMAGENET, RESNET18_SCRATCH, make_config
from classifier.training.train import train_classifier
from runkit.rundir import read_json, runs_root

from pipelines.studies.choice import validation_scores, validation_spreads, write_choice
from pipelines.studies.mitigations import measure
from pipelines.experiment.stats import spread
from runkit.formatting import markdown_table, mean_sd
from pipelines.experiment.steps import ensure_timed

RUNS_ROOT = runs_root("choose-backbone")
MARGIN = 0.01  # one point of score
MAX_SLOWDOWN = 1.5
DEFAULT, CHALLENGER = "resnet18-scratch", "lite0-imagenet"
# on the whole image, as when the choice was made (the cpu profile now sees the lungs only)
CANDIDATES = {DEFAULT: {**RESNET18_SCRATCH, "region": "full"}, CHALLENGER: {**LITE0_IMAGENET, "region": "full"}}


def train_timed(run_dir: Path, settings: dict, times_file: Path, overwrite: bool, log) -> Path:
    """Train (or reuse) one run, its training time recorded in ``times_file``."""
    config = make_config(**settings)
    _, how = ensure_timed(run_dir, config.to_dict(), lambda d, **kw: train_classifier(config, d, **kw), times_file,
                          overwrite=overwrite)
    log(f"{run_dir}: {how}")
    return run_dir


def decide(cells: dict) -> str:
    """The winner by the rule (see the module docstring)."""
    default, challenger = cells[DEFAULT], cells[CHALLENGER]
    better = challenger["score"]["mean"] > default["score"]["mean"] + MARGIN
    slowdown = (challenger["seconds"]["mean"] / default["seconds"]["mean"]
                if challenger["seconds"] and default["seconds"] else None)
    return CHALLENGER if better and slowdown is not None and slowdown <= MAX_SLOWDOWN else DEFAULT


def run_backbone_choice(settings: dict, seeds: tuple[int, ...], out_dir: Path = RUNS_ROOT, overwrite: bool = False,
                        log=print) -> dict:
    """Train both candidates over ``seeds``, score them on validation, decide; write choice.json and choice.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    times_file = out_dir / "times.json"
    dataset = settings.get("dataset", "cxr3")
    cells = {}
    for name, candidate in CANDIDATES.items():
        runs = []
        for seed in seeds:
            runs.append(train_timed(out_dir / f"{name}-seed{seed}", {**settings, **candidate, "seed": seed}, times_file,
                                    overwrite, log))
        scores = [validation_scores(run, dataset) for run in runs]
        times = read_json(times_file)
        seconds = [times.get(run.name) for run in runs]
        cells[name] = {"settings": candidate, "runs": [str(r) for r in runs], **validation_spreads(scores),
                       "seconds": spread(seconds) if None not in seconds else None,
                       "not_used_by_the_rule": measure(runs)}
    return write_choice(out_dir, {"settings": settings, "seeds": list(seeds), "margin": MARGIN,
                                  "max_slowdown": MAX_SLOWDOWN, "chosen": decide(cells), "cells": cells}, table)


def table(result: dict) -> str:
    ms = mean_sd
    rows = []
    for name, c in result["cells"].items():
        t = c["not_used_by_the_rule"]
        mark = " **(chosen)**" if name == result["chosen"] else ""
        rows.append([f"{name}{mark}", ms(c["val_accuracy"]), ms(c["val_within_source_accuracy"]), ms(c["score"]),
                     ms(c["seconds"], 1), ms(t["test_accuracy"]), ms(t["covid_recall"]),
                     ms(t["within_source_accuracy"]), ms(t["out_of_source_covid_fp"])])
    lines = markdown_table(["candidate", "val accuracy %", "val ieee8023 covid vs pneumonia %", "score %",
                            "train time s", "(test) accuracy %", "(test) covid recall %", "(test) within ieee8023 %",
                            "(paediatric) out-of-source covid FP %"], rows)
    return "\n".join(lines) + (
        f"\n\nSeeds {', '.join(map(str, result['seeds']))}; mean ± sd over seeds. {CHALLENGER} wins when its score "
        f"is more than {100 * result['margin']:g} point above {DEFAULT}'s and its training time at most "
        f"{result['max_slowdown']:g}× (docs/reproduction.md). Columns in brackets are not read by the rule.\n")
