"""Measure the shortcut mitigations side by side: each variant of the v1 classifier over seeds.

For every variant (a set of classifier settings) and seed, one v1 classifier is trained on the
same split, plus one lungs-hidden control per variant (first seed). Measured per variant, as
mean ± sd over seeds: the out-of-source covid false-positive rate (see
:mod:`classifier.evaluation.crosssource`), internal test accuracy, covid recall, the within-source accuracy of ieee8023
covid vs pneumonia, the Grad-CAM border share, and the lungs-hidden accuracy against chance.
Finished runs are reused, so an interrupted measurement continues where it stopped.
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from classifier.config import make_config
from classifier.training.train import train_classifier
from runkit.rundir import read_json, runs_root, write_json
from runkit.formatting import markdown_table, mean_sd, pct

from pipelines.experiment.analysis import chance_level, false_positive, read_predictions
from pipelines.experiment.stats import spread
from pipelines.experiment.steps import ensure

RUNS_ROOT = runs_root("mitigations")
# the whole image, as when these variants were measured (the cpu profile now sees the lungs only)
PUBLISHED = {"zoom": 0.1, "width_shift": 0.1, "height_shift": 0.1, "region": "full"}  # v1 framing as published
FRAMING = {"zoom": 0.3, "width_shift": 0.15, "height_shift": 0.15, "region": "full"}  # strong random crop / pad
ADVERSARY_WEIGHT = 1.0  # the reversal weight measured (not tuned: docs/results/2026-11-generalisation.md)
VARIANTS = {  # name: classifier settings on top of the profile (and of --set)
    "none": PUBLISHED,
    "style": {**PUBLISHED, "style_augment": True},
    "equalize": {**PUBLISHED, "equalize": True},
    "source-balanced": {**PUBLISHED, "source_balanced": True},
    "framing": FRAMING,
    "all": {**FRAMING, "style_augment": True, "equalize": True, "source_balanced": True},
    # issue 24: the counterfactual source translations (make counterfactual) and the class-conditional
    # source adversary, each on top of today's default (framing)
    "v3": {**FRAMING, "aug": "v3"},
    "adversary": {**FRAMING, "source_adversary": ADVERSARY_WEIGHT},
    "v3+adversary": {**FRAMING, "aug": "v3", "source_adversary": ADVERSARY_WEIGHT},
    # each with v2 (the papers' synthetic covid images, make synth), to ask their question on them
    "v2": {**FRAMING, "aug": "v2"},
    "v2+v3": {**FRAMING, "aug": "v2+v3"},
    "v2+adversary": {**FRAMING, "aug": "v2", "source_adversary": ADVERSARY_WEIGHT},
    "v2+v3+adversary": {**FRAMING, "aug": "v2+v3", "source_adversary": ADVERSARY_WEIGHT},
    # issue 42: the lung segmenter's masks; everything outside the dilated lungs blacked out, cropped to them
    "lungs-only": {**FRAMING, "region": "lungs-only"},
}
# the grid v3's size and the adversary's weight are chosen over (pipelines/studies/choice.py): images per
# label of the counterfactual set (0: all 150) × reversal weight (0: no adversary)
CHOICE_COUNTS = (50, 0)
CHOICE_WEIGHTS = (0.0, 0.3, 1.0)


def choice_variant(count: int, weight: float) -> str:
    """The variant name of one grid cell: ``v3``, ``v3-50``, ``v3-50+adversary-0.3``…"""
    name = "v3" + (f"-{count}" if count else "")
    if weight:
        name += "+adversary" + ("" if weight == ADVERSARY_WEIGHT else f"-{weight:g}")
    return name


CHOICE_GRID = {choice_variant(count, weight): {**FRAMING, "aug": "v3", "counterfactual_per_class": count,
                                               **({"source_adversary": weight} if weight else {})}
               for count in CHOICE_COUNTS for weight in CHOICE_WEIGHTS}
# the all/0 and all/1.0 cells are the table's v3 and v3+adversary, already above
VARIANTS.update({name: cell for name, cell in CHOICE_GRID.items() if name not in VARIANTS})
# `make mitigations`: the variants that need no CycleGAN; `make shortcut-proof`: the issue-24 table
AUGMENTATION_VARIANTS = ("none", "style", "equalize", "source-balanced", "framing", "all")
SHORTCUT_PROOF_VARIANTS = ("framing", "v3", "adversary", "v3+adversary", "v2", "v2+v3", "v2+adversary",
                           "v2+v3+adversary")
WITHIN = "ieee8023"  # the only source with two diseases in cxr3


def run_mitigations(settings: dict, seeds: tuple[int, ...], variants: list[str], out_dir: Path,
                    overwrite: bool = False, log=print) -> dict:
    """Train every variant × seed (and a lungs-hidden control per variant); write ``results.json``
    and ``table.md`` into ``out_dir`` and return the results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant in tqdm(variants, desc="variants", unit="variant"):
        runs = [train_variant(out_dir, variant, seed, settings, overwrite, log) for seed in seeds]
        hidden = train_variant(out_dir, variant, seeds[0], {**settings, "hide_lungs": True}, overwrite, log)
        results[variant] = summarise(runs, hidden)
    write_json(out_dir / "results.json", {"settings": settings, "seeds": list(seeds),
                                          "variants": {v: VARIANTS[v] for v in variants}, "results": results})
    (out_dir / "table.md").write_text(table(results), encoding="utf-8")
    return results


def train_variant(out_dir: Path, variant: str, seed: int, settings: dict, overwrite: bool, log) -> Path:
    """One finished run of ``variant`` with ``seed`` in ``out_dir`` (reused when it exists)."""
    config = make_config(**{**settings, **VARIANTS[variant], "seed": seed})
    run_dir = out_dir / f"{variant}{'-lungs-hidden' if config.hide_lungs else ''}-seed{seed}"
    _, how = ensure(run_dir, config.to_dict(), lambda d, **kw: train_classifier(config, d, **kw),
                    overwrite=overwrite)
    log(f"{run_dir}: {how}")
    return run_dir


def measure(runs: list[Path]) -> dict:
    """Mean ± sd over seeds of each measurement of finished ``runs``."""
    metrics = [read_json(run / "metrics.json") for run in runs]

    def over_seeds(values) -> dict | None:
        values = list(values)
        return spread([float(v) for v in values]) if values and None not in values else None

    def within(m: dict) -> float | None:
        entry = m["per_source"].get(WITHIN, {}).get("within_source")
        return entry["accuracy"]["rate"] if entry else None

    return {
        "runs": [str(r) for r in runs],
        "out_of_source_covid_fp": over_seeds(_rate(false_positive(m)) for m in metrics),
        "test_accuracy": over_seeds(m["test"]["accuracy"] for m in metrics),
        "covid_recall": over_seeds(m["test"]["per_class"]["covid"]["recall"] for m in metrics),
        "within_source_accuracy": over_seeds(within(m) for m in metrics),
        "border_share": over_seeds(m["gradcam"]["mean_border_share"] for m in metrics),
    }


def summarise(runs: list[Path], hidden: Path) -> dict:
    """:func:`measure` of ``runs``, and the lungs-hidden control ``hidden``."""
    control = read_json(hidden / "metrics.json")
    return {**measure(runs), "lungs_hidden": {"run": str(hidden), "accuracy": control["test"]["accuracy"],
                                              "chance": chance_level(read_predictions(hidden)),
                                              "out_of_source_covid_fp": _rate(false_positive(control))}}


def _rate(measured: dict | None) -> float | None:
    return None if measured is None else measured["rate"]


def table(results: dict) -> str:
    ms = mean_sd
    rows = [[name, ms(r["out_of_source_covid_fp"]), ms(r["test_accuracy"]), ms(r["covid_recall"]),
             ms(r["within_source_accuracy"]), ms(r["border_share"]),
             f"{pct(r['lungs_hidden']['accuracy'])} ({pct(r['lungs_hidden']['chance'])})",
             pct(r["lungs_hidden"]["out_of_source_covid_fp"])] for name, r in results.items()]
    return "\n".join(markdown_table(["mitigation", "out-of-source covid FP %", "internal test accuracy %",
                                     "covid recall %", "ieee8023 covid vs pneumonia accuracy %", "border share %",
                                     "central box hidden: accuracy % (chance)",
                                     "central box hidden: out-of-source covid FP %"], rows)) + "\n"
