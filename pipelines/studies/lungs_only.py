"""Should the classifier see only the lungs? v1 on the whole image against v1 on the lungs only
(``--region lungs-only``), over seeds, measured like every mitigation and decided on validation.

The rule, written down before the runs (docs/lungs.md): each variant's score is the mean over
seeds of (validation accuracy + validation ieee8023 covid-vs-pneumonia accuracy) / 2, as in
choose-v3. lungs-only becomes the default when its score is at least the whole image's minus
:data:`TIE`: it cannot use anything outside the lungs, so it is preferred unless it costs more
than a point where the rule may look. Nothing the rule reads comes from the test split or the
paediatric images; their numbers (internal test accuracy, covid recall, ieee8023 covid vs
pneumonia on test, the out-of-source covid calls) are tabulated beside it, after the choice.
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from runkit.formatting import markdown_table, mean_sd

from pipelines.studies.choice import scored, write_choice
from pipelines.studies.mitigations import VARIANTS, train_variant

TIE = 0.01  # one point of score
FULL, LUNGS = "framing", "lungs-only"  # today's default (the whole image) and the challenger


def decide(full: dict, lungs: dict) -> str:
    """The variant the rule picks from the two validation spreads."""
    return LUNGS if lungs["score"]["mean"] >= full["score"]["mean"] - TIE else FULL


def run_lungs_only(settings: dict, seeds: tuple[int, ...], out_dir: Path, overwrite: bool = False,
                   log=print) -> dict:
    """Train both variants over ``seeds``, score them on validation, decide; write ``choice.json``
    and ``choice.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = settings.get("dataset", "cxr3")
    variants = {}
    for name in tqdm((FULL, LUNGS), desc="variants", unit="variant"):
        variants[name] = scored([train_variant(out_dir, name, seed, settings, overwrite, log) for seed in seeds],
                                dataset)
    chosen = decide(variants[FULL], variants[LUNGS])
    return write_choice(out_dir, {"settings": settings, "seeds": list(seeds), "tie": TIE, "chosen": chosen,
                                  "chosen_settings": VARIANTS[chosen], "variants": variants}, table)


def table(result: dict) -> str:
    ms = mean_sd
    rows = []
    for name, v in result["variants"].items():
        t = v["not_used_by_the_rule"]
        mark = " **(chosen)**" if name == result["chosen"] else ""
        label = "whole image (framing, today's default)" if name == FULL else "lungs only"
        rows.append([f"{label}{mark}", ms(v["val_accuracy"]), ms(v["val_within_source_accuracy"]), ms(v["score"]),
                     ms(t["test_accuracy"]), ms(t["covid_recall"]), ms(t["within_source_accuracy"]),
                     ms(t["out_of_source_covid_fp"])])
    lines = markdown_table(["what the model sees", "val accuracy %", "val ieee8023 covid vs pneumonia %", "score %",
                            "(test) accuracy %", "(test) covid recall %", "(test) ieee8023 covid vs pneumonia %",
                            "(paediatric) out-of-source covid calls %"], rows)
    return "\n".join(lines) + (f"\n\nSeeds {', '.join(map(str, result['seeds']))}; score = (val accuracy + val "
                               "within-source accuracy) / 2, mean ± sd over seeds; lungs only wins unless its score "
                               f"is more than {100 * result['tie']:g} point below the whole image's. The columns in "
                               "brackets are not read by the rule.\n")
