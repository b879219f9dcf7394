"""The reproduction's report: the paper's figures beside ours under its protocol and the three
audits, the deviations, the cost; ``report.md`` and ``results.json``."""
from __future__ import annotations

import datetime
from pathlib import Path

from runkit.intervals import wilson_interval
from classifier.model.weights import describe_weights
from cxrdata.manifest import CLASSES
from runkit.machine import describe
from runkit.rundir import read_json, write_json

from pipelines.experiment.stats import spread
from runkit.formatting import interval, markdown_table, mean_sd, signed_interval
from pipelines.studies.reproduction.against import against_paper
from pipelines.studies.reproduction.protocols import Protocol
from pipelines.studies.reproduction.splits import POOLS, corpus

COLUMNS = {"protocol": "ours, the paper's protocol", "v2": "ours, v2 (+ synthetic covid)",
           "v2-lungs": "ours, v2-lungs (+ lungs-region synthetic covid)",
           "grouped": "(a) patients grouped", "lungs-removed": "(b) lungs removed, replicate 0",
           "lungs-only": "(b) lungs only, replicate 0", "outline": "(b) outline only, replicate 0",
           "box": "(b) the box (central 70 % × 70 %), replicate 0"}
UNSEEN = "nih"  # hospital images, mostly adults: a source none of the three papers trained on
ADULT = 18  # years


def run_numbers(run: Path) -> dict:
    """What the report reads from one run: accuracy, per-class precision and recall, the
    unseen-source block (NIH normal and pneumonia called covid)."""
    metrics = read_json(Path(run) / "metrics.json")
    test = metrics["test"]
    out = {"accuracy": test["accuracy"], "n": test["n"],
           "precision": {c: test["per_class"][c]["precision"] for c in CLASSES},
           "recall": {c: test["per_class"][c]["recall"] for c in CLASSES}}
    block = metrics.get("cross_source")
    unseen = block.get("sources", {}).get(UNSEEN, {}) if isinstance(block, dict) else {}
    called = sum(unseen[c]["predicted"]["covid"]["k"] for c in ("normal", "pneumonia") if c in unseen)
    seen = sum(unseen[c]["n"] for c in ("normal", "pneumonia") if c in unseen)
    out["unseen_called_covid"] = {"k": called, "n": seen, "rate": called / seen if seen else None}
    return out


def over_replicates(values: list) -> dict | None:
    """:func:`..stats.spread` of the defined values (None: a number a run could not measure)."""
    values = [v for v in values if v is not None]
    return spread(values) if values else None


def _paper(value: float | None, n: int | None = None) -> str:
    if value is None:
        return "–"
    if n:
        low, high = wilson_interval(round(value * n), n)
        return f"{100 * value:.1f} [{100 * low:.0f}–{100 * high:.0f}]"
    return f"{100 * value:.1f}"


def _one_or_spread(spread_: dict | None) -> str:
    """mean ± sd over replicates, or the one run's value."""
    return mean_sd(spread_) if spread_ is None or spread_["n"] > 1 else f"{100 * spread_['mean']:.1f}"


def _ours(kind: dict) -> str:
    """Our accuracy: mean ± sd over replicates, or one run's with its Wilson interval."""
    accuracy = kind["accuracy"]
    if accuracy["n"] > 1:
        return mean_sd(accuracy)
    return _paper(accuracy["mean"], kind["test_images"])


def summarise(replicates: list[dict]) -> dict:
    """Per kind of run (protocol, v2, grouped, the lung controls, second-test): the spread of each number."""
    kinds = sorted({k for r in replicates for k in r["runs"]})
    out = {}
    for kind in kinds:
        numbers = [run_numbers(Path(r["runs"][kind])) for r in replicates if kind in r["runs"]]
        out[kind] = {"accuracy": over_replicates([x["accuracy"] for x in numbers]),
                     "precision": {c: over_replicates([x["precision"][c] for x in numbers]) for c in CLASSES},
                     "recall": {c: over_replicates([x["recall"][c] for x in numbers]) for c in CLASSES},
                     "unseen_called_covid": over_replicates([x["unseen_called_covid"]["rate"] for x in numbers]),
                     "unseen_images": numbers[0]["unseen_called_covid"]["n"], "test_images": numbers[0]["n"],
                     "replicates": numbers}
    return out


def results_table(protocol: Protocol, summary: dict) -> list[str]:
    kinds = [k for k in COLUMNS if k in summary]
    figures = protocol.figures
    paper_acc = _paper(figures["accuracy"], figures["test_images"])
    for key, name in (("accuracy_v2", "v2"), ("accuracy_resnet50", "ResNet50"),
                      ("accuracy_efficientnetb0", "EfficientNetB0")):
        if key in figures:
            paper_acc += f"; {name} {_paper(figures[key], figures['test_images'])}"
    rows = [["accuracy", paper_acc, *(_ours(summary[k]) for k in kinds)]]
    rows += [[f"{c} {metric}", _paper(figures.get(metric, {}).get(c)),
              *(_one_or_spread(summary[k][metric][c]) for k in kinds)]
             for metric in ("precision", "recall") for c in CLASSES]
    rows.append([f"(c) unseen source: NIH normal + pneumonia called covid ({summary['protocol']['unseen_images']} "
                 "images)", "not measured", *(_one_or_spread(summary[k]["unseen_called_covid"]) for k in kinds)])
    header = ["%", f"paper ({figures['backbone']}, {figures['test_images']} test images)", *(COLUMNS[k] for k in kinds)]
    return markdown_table(header, rows)


def started_from(replicates: list[dict]) -> str:
    """The exact weights the first protocol run started from, as its config.json records them."""
    recorded = read_json(Path(replicates[0]["runs"]["protocol"]) / "config.json").get("runtime", {}).get("weights")
    return describe_weights(recorded) if recorded else "not recorded: the run predates the record"


def deviations(protocol: Protocol, settings: dict, replicates: int) -> list[str]:
    """Everything the run does differently from the paper: the protocol's own list, then what the
    profile and the number of replicates change."""
    out = list(protocol.deviations)
    if replicates < protocol.cv_replicates:
        out.append(f"{replicates} of the paper's {protocol.cv_replicates} CV folds run, to fit the 2-core CPU budget "
                   "(`--profile paper` runs every fold)")
    backbone_paper = protocol.classifier["backbone"]
    if settings["backbone"] != backbone_paper:
        out.append(f"backbone {settings['backbone']} (ImageNet, installs offline) instead of the paper's "
                   f"{backbone_paper}, whose ImageNet weights need a download (`--profile paper` on a machine with "
                   "internet)")
    if settings["image_size"] != 224:
        out.append(f"{settings['image_size']} px instead of 224 px, to fit the 2-core CPU budget (`--profile paper` "
                   "runs 224 px)")
    return out


def notes_markdown(protocol: Protocol, settings: dict, replicates: int) -> str:
    """What the profile decided and every deviation, as docs/reproduction.md lists them."""
    return "\n".join([f"**{protocol.citation}** (`{protocol.paper}`)", "", "Decided where the paper is silent:",
                      *(f"- {d}" for d in protocol.decided), "", "Deviations:",
                      *(f"- {d}" for d in deviations(protocol, settings, replicates))])


def unseen_minors() -> tuple[int, int]:
    """How many of the unseen source's images are of patients under :data:`ADULT`, of how many."""
    ages = [r.extra.get("age", "") for r in corpus() if r.source == UNSEEN]
    return sum(1 for a in ages if a and float(a) < ADULT), len(ages)


def against_table(against: dict) -> list[str]:
    """Each figure of the paper beside ours, both with 95 % intervals, and the verdict."""
    rows = [[row["figure"], f"{interval(row['paper'])} ({row['paper_n']})", interval(row["ours"]), row["verdict"]]
            for row in against["rows"]]
    lines = markdown_table(["figure, %", "the paper [95 % Wilson] (test images)",
                            "ours, replicates pooled [95 %, patients resampled]", "verdict"], rows)
    lines += ["", f"Verdicts: {against['rule']}."]
    for kind in ("v2", "v2-lungs"):
        delta = against.get(f"{kind}_minus_v1")
        if delta:
            test = delta["mcnemar"]
            lines += ["", f"**{kind} − v1**, paired on the same test images ({delta['test_rows']} over the "
                          f"replicates): accuracy {signed_interval(delta['accuracy'])} points, covid recall "
                          f"{signed_interval(delta['covid_recall'])} points (bootstrap over patients); McNemar exact "
                          f"p = {test['p_value']:.2g} ({test['only_a_right']} images only v1 got right, "
                          f"{test['only_b_right']} only {kind})."]
    return lines


def write_report(out: Path, protocol: Protocol, profile: str, settings: dict, replicates: list[dict],
                 progression: dict | None, cost: dict) -> None:
    summary = summarise(replicates)
    against = against_paper(protocol, {kind: [r["runs"][kind] for r in replicates if kind in r["runs"]]
                                       for kind in ("protocol", "v2", "v2-lungs") if kind in replicates[0]["runs"]})
    minors, unseen = unseen_minors()
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"# Reproduction: {protocol.citation}", "",
             f"`cxr study reproduce --paper {protocol.paper} --profile {profile}`; {when}; {describe()}; "
             f"{len(replicates)} replicate(s); the classifiers trained in "
             + (f"{cost['training_seconds'] / 60:.1f} min" if cost.get("training_seconds") else "an unrecorded time")
             + f" (the sum of their runs as they ran); this invocation {cost['seconds'] / 60:.1f} min, peak memory "
             f"{cost['peak_rss_mib'] / 1024:.2f} GiB.", "",
             f"Backbone **{settings['backbone']}** with ImageNet weights ({started_from(replicates)}), body frozen, "
             f"new `{settings['head']}` head, "
             f"{settings['image_size']} px, Adam {settings['lr']:g}, batch {settings['batch_size']}, "
             f"{settings['epochs']} epochs, model kept: {settings['select']}. Data: {POOLS[protocol.pool][1]}. "
             "Mean ± sd over replicates; the paper's accuracy with the 95 % interval its test size allows.", ""]
    lines += results_table(protocol, summary)
    lines += ["", "## Against the paper", ""] + against_table(against)
    if "second-test" in summary:
        second = summary["second-test"]
        lines += ["", f"Second test set ({POOLS[protocol.second_test][1]}, {second['test_images']} images), "
                      f"the protocol's models: accuracy {mean_sd(second['accuracy'])} %."]
    leaks = [r["patients_on_both_sides"] for r in replicates]
    lines += ["", "## How to read it", "",
              f"- The paper's split is per image: {min(leaks)}–{max(leaks)} patients have images on both sides "
              "of each replicate's train/test split. Column (a) keeps every patient on one side.",
              "- (b) retrains the protocol (first replicate) on part of every image (train and test), from the lung "
              "segmenter's "
              "cross-fitted masks: the lungs removed (dilated by 3 % of the side), the lungs only (cropped to "
              "them), their outline alone, and the old box (the central 70 % × 70 % square, 49 % of the image, "
              "which leaves the apices, lateral fields and costophrenic angles visible). Accuracy far above a "
              "third with the lungs removed, or from the outline, is read from outside the lungs' grey levels.",
              f"- (c) is the protocol's model on NIH hospital images of normal and pneumonia ({minors} of {unseen} "
              "of patients under 18), a source it never saw. None of them is covid: the share called covid is how "
              "often the model answers by image style.",
              "", "## Where the paper is silent (this profile decided)", ""]
    lines += [f"- {d}" for d in protocol.decided]
    lines += ["", "## Deviations from the paper", ""]
    lines += [f"- {d}" for d in deviations(protocol, settings, len(replicates))]
    lines += ["", "## Grad-CAM", "", "Replicate 0's protocol model, first images of each true class:", ""]
    first = Path(replicates[0]["runs"]["protocol"])
    lines += [f"![{c}]({(first / 'gradcam' / f'grid_{c}.png').relative_to(out)})" for c in CLASSES
              if (first / "gradcam" / f"grid_{c}.png").is_file()]
    if progression:
        days = ", ".join(f"day {i['offset_days']}: {i['predicted']}" for i in progression["images"])
        lines += ["", f"Disease progression of patient {progression['patient_id']} (Zebin & Rezvy's Fig. 8; {days}; "
                      "these images may be in the model's training split):", "",
                  f"![progression]({Path(progression['figure']).relative_to(out)})"]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(out / "results.json", {"paper": protocol.paper, "profile": profile, "settings": settings,
                                      "figures": protocol.figures, "summary": summary, "against_paper": against,
                                      "deviations": list(protocol.deviations), "replicates": replicates,
                                      "progression": progression, "cost": cost, "machine": describe(), "date": when})
