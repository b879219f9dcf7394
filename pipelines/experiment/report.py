"""``report.json`` and ``report.md`` of an experiment, for a clinician-researcher to read.

Every number comes from :mod:`pipelines.experiment.analysis` over files in the experiment folder; figures
are linked by relative path.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cxrdata import CLASSES
from cxrdata.manifest import Manifest, manifest_path
from runkit.rundir import current_names, read_json, write_json
from runkit.formatting import markdown_table, mean_sd, pct, signed_interval, signed_pct

from classifier.evaluation.crosssource import source_caveat, source_mix
from classifier.training.data import SYNTHETIC_SOURCE
from cxrdata.cache import decode
from cxrdata.images import read_grayscale
from cyclegan.realism.assessment import realism_lines, save_columns_figure

from pipelines.experiment import analysis
from pipelines.experiment.controls import LUNG_CONTROLS, V1, control_summary, controls_markdown
from pipelines.studies.mitigations import WITHIN
from classifier.evaluation.progression import progression_candidates, render

PAPERS = [
    # (paper, setting, model, accuracy as published); differences in setup are stated in the report
    ("Zebin & Rezvy 2020", "v1 (classical augmentation)", "VGG16", 0.88),
    ("Zebin & Rezvy 2020", "v2 (+100 CycleGAN covid images)", "VGG16", 0.90),
    ("Zebin & Rezvy 2020", "v2", "ResNet50", 0.943),
    ("Zebin & Rezvy 2020", "v2", "EfficientNetB0", 0.968),
    ("Makris et al. 2020", "classical augmentation", "VGG16", 0.959),
    ("Luiz et al.", "10-fold CV", "DenseNet121", 0.946),
]
PAPER_SETUP = ("Their test sets set adult COVID-19 images (ieee8023 figures) against paediatric "
               "normal and pneumonia X-rays (Kaggle), 80/20 image-level splits without patient "
               "grouping, ImageNet-pretrained backbones at 224 px, 35–50 epochs on a GPU.")


def write_report(config, replicates, out_dir: Path) -> Path:
    """Compute every number, render the figures and write ``report.json`` and ``report.md``."""
    out_dir = Path(out_dir)
    pairs = []
    for replicate in replicates:
        v1, v2 = (analysis.read_predictions(replicate.runs[k]) for k in ("v1", "v2"))
        analysis.paired(v1, v2, replicate.name)
        pairs.append((v1, v2))
    names = [r.name for r in replicates]
    rows = analysis.per_replicate(names, pairs)
    first = replicates[0]
    manifest = Manifest.read(manifest_path(first.manifest))
    data = {"dataset": config.dataset, "counts": manifest.counts(), "patients": len({r.patient_id for r in manifest}),
            "train_sources": source_mix(manifest.select(split="train"), leave_out=SYNTHETIC_SOURCE)}
    result = {
        "question": f"Does adding {config.n_synthetic} CycleGAN-synthesised COVID-19 images to the training "
                    "set (v2) change a 3-class classifier's test accuracy compared with classical "
                    "augmentation alone (v1)?",
        "config": config.to_dict(), "data": data,
        "replicates": rows, "across_replicates": analysis.across(rows),
        "pooled": analysis.delta_statistics(pairs),
        "out_of_source": analysis.out_of_source(names, [(r.runs["v1"], r.runs["v2"]) for r in replicates]),
        "per_source": analysis.per_source(pairs),
        "gradcam_border_share": {k: analysis.mean_border_share([r.runs[k] for r in replicates])
                                 for k in ("v1", "v2")},
        "synthesis": read_json(first.synthetic / "report.json"),
        "settings": {"classifier": read_json(first.runs["v1"] / "config.json"),
                     "gan": current_names(read_json(first.gan_run / "config.json"))},
        "files": {"replicates": "replicates.json"},
    }
    controls = {name: control_summary(name, first.runs[f"v1-{name}"]) for name in LUNG_CONTROLS
                if f"v1-{name}" in first.runs}
    if controls:
        result["lung_controls"] = controls
        result["lung_controls_v1"] = control_summary(V1, first.runs["v1"])
    if "v3" in first.runs:
        result["counterfactual"] = {arm: _arm_against_v1(replicates, pairs, arm) for arm in ("v2", "v3", "v2+v3")}
    if "v2-lungs" in first.runs:
        with_lungs = [(v2, analysis.read_predictions(r.runs["v2-lungs"])) for r, (_, v2) in zip(replicates, pairs)]
        result["lung_gan"] = {"arms": {arm: _arm_against_v1(replicates, pairs, arm) for arm in ("v2", "v2-lungs")},
                              "v2-lungs minus v2": analysis.delta_statistics(with_lungs),
                              "choice": lung_gan_choice(replicates),
                              "synthesis": read_json(first.lung_synthetic / "report.json"),
                              "figure": str(both_syntheses_figure(first, out_dir / "figures" / "synthesis-both.png"))}
    result["sweep"] = _sweep(config, replicates, pairs)
    result["progression"] = _progression(first, out_dir)
    write_json(out_dir / "report.json", result)
    (out_dir / "report.md").write_text(markdown(result, replicates, out_dir), encoding="utf-8")
    return out_dir


def _arm_against_v1(replicates, pairs, arm: str) -> dict:
    """One arm beside v1 with the v1-vs-v2 statistics: accuracy over replicates, the paired deltas
    (patient bootstrap), the out-of-source rate and the within-source accuracy."""
    against = [(v1, analysis.read_predictions(r.runs[arm])) for r, (v1, _) in zip(replicates, pairs)]
    for r, (v1, other) in zip(replicates, against):
        analysis.paired(v1, other, r.name)
    rows = analysis.per_replicate([r.name for r in replicates], against)
    oos = analysis.out_of_source([r.name for r in replicates], [(r.runs["v1"], r.runs[arm]) for r in replicates])
    within = analysis.per_source(against)["v2"].get(WITHIN, {}).get("within_source")
    return {"accuracy": analysis.across(rows)["v2_accuracy"],
            "covid_recall": analysis.headline(analysis.pool(against)[1])["covid_recall"],
            "delta": analysis.delta_statistics(against),
            "out_of_source": None if isinstance(oos, str) else {"rate": oos["v2"], "delta": oos["delta"]},
            "within_source_accuracy": within["accuracy"]["rate"] if within else None}


def _arms_table(result: dict, arms: dict) -> list[str]:
    """Each arm beside v1: accuracy, the paired differences with McNemar, the out-of-source rate and
    the within-source accuracy."""
    v1 = result["across_replicates"]["v1_accuracy"]
    v1_oos = pct(result["out_of_source"]["v1"]["mean"]) if isinstance(result["out_of_source"], dict) else None
    rows = [["v1", mean_sd(v1), "", "", "", v1_oos, "", ""]]
    rows += [[arm, mean_sd(r["accuracy"]), signed_interval(r["delta"]["accuracy"]),
              f"{r['delta']['mcnemar']['p_value']:.2g}", signed_interval(r["delta"]["covid_recall"]),
              r["out_of_source"] and pct(r["out_of_source"]["rate"]["mean"]),
              r["out_of_source"] and signed_interval(r["out_of_source"]["delta"]), pct(r["within_source_accuracy"])]
             for arm, r in arms.items()]
    return markdown_table(["arm", "accuracy %", "− v1 [95% CI]", "McNemar p", "covid recall − v1 [95% CI]",
                           "out-of-source covid FP %", "− v1 [95% CI]", f"{WITHIN} covid vs pneumonia %"], rows)


def _counterfactual_section(result: dict) -> list[str]:
    out = ["## Counterfactual source translations (v3)", "",
           "v3 = v1 plus source translations with labels kept (NIH images in the other sources' style, covid "
           "images in NIH style; `make counterfactual`), v2+v3 both sets. Each arm against v1, on the same test "
           "images and seeds; intervals resample test patients.", ""]
    return out + _arms_table(result, result["counterfactual"]) + [""]


def best_validation_accuracy(run_dir: Path) -> float:
    """The validation accuracy of the epoch a classifier run kept."""
    training = read_json(Path(run_dir) / "metrics.json")["training"]
    return next(h["val_accuracy"] for h in training["history"] if h["epoch"] == training["best_epoch"])


def lung_gan_choice(replicates) -> dict:
    """The demo's rule (docs/results/2026-12-07-lung-gan.md), on the validation split only: v2-lungs
    if its mean validation accuracy over replicates is at least v2's."""
    means = {arm: float(np.mean([best_validation_accuracy(r.runs[arm]) for r in replicates]))
             for arm in ("v2", "v2-lungs")}
    return {"mean_validation_accuracy": means, "picked": "v2-lungs" if means["v2-lungs"] >= means["v2"] else "v2"}


def both_syntheses_figure(replicate, path: Path) -> Path:
    """The same parents, their whole-image and their lungs-region translations, one row each."""
    made = {name: Manifest.read(folder / "manifest.csv", root=folder) for name, folder in
            (("whole image", replicate.synthetic), ("lungs region", replicate.lung_synthetic))}
    by_parent = {name: {r.extra["parent_path"]: r for r in rows} for name, rows in made.items()}
    common = [p for p in by_parent["lungs region"] if p in by_parent["whole image"]]
    corpus = {r.path: r for r in Manifest.read(manifest_path(replicate.manifest))}
    size = read_json(replicate.lung_synthetic / "report.json")["image_size"]
    rows = {"parent": np.stack([decode(corpus[p], size) for p in common])}
    rows.update({f"{name} CycleGAN": np.stack([read_grayscale(by_parent[name][p].file) for p in common])
                 for name in made})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_columns_figure(rows, [by_parent["lungs region"][p].extra["parent_image_id"] for p in common], path)
    return path


def _lung_gan_section(result: dict, link, first) -> list[str]:
    block = result["lung_gan"]
    choice = block["choice"]["mean_validation_accuracy"]
    out = ["## Synthetic covid that keeps its hospital (v2-lungs)", "",
           "v2-lungs = v1 plus as many covid images from a lungs-region CycleGAN (`--region lungs`, trained on the "
           "same training split with the same settings): each normal parent's lungs translated and pasted back, "
           "everything outside the dilated lungs the parent's own pixels. Each arm against v1, on the same test "
           "images and seeds; intervals resample test patients.", ""]
    out += _arms_table(result, block["arms"])
    out += ["", f"v2-lungs − v2: {signed_interval(block['v2-lungs minus v2']['accuracy'])} points, McNemar p = "
            f"{block['v2-lungs minus v2']['mcnemar']['p_value']:.2g}.",
            f"The rule on the validation split (mean validation accuracy of the kept epoch): v2 {pct(choice['v2'])}, "
            f"v2-lungs {pct(choice['v2-lungs'])}: **{block['choice']['picked']}**.", "",
            "The same parents translated by each CycleGAN:", "", f"![both syntheses]({link(block['figure'])})", "",
            f"Realism of the lungs-region synthesis in [its report]({link(first.lung_synthetic / 'report.md')}), "
            f"of the whole-image one in [its own]({link(first.synthetic / 'report.md')}).", ""]
    return out


def _sweep(config, replicates, pairs) -> list[dict]:
    if not config.sweep:
        return []
    points = []
    for n in sorted({0, *config.synthetic_counts}):
        if n == 0:
            points.append({"n": 0, "delta_accuracy": {"estimate": 0.0, "low": 0.0, "high": 0.0},
                           "note": "v2 with no synthetic image is v1"})
            continue
        key = "v2" if n == config.n_synthetic else f"v2-n{n}"
        sweep_pairs = [(v1, analysis.read_predictions(r.runs[key])) for r, (v1, _) in zip(replicates, pairs)]
        points.append({"n": n, "delta_accuracy": analysis.delta_statistics(sweep_pairs)["accuracy"]})
    return points


def _progression(replicate, out_dir: Path) -> dict | None:
    manifest = Manifest.read(manifest_path(replicate.manifest))
    candidates = progression_candidates(manifest)
    if not candidates:
        return None
    return render(manifest, candidates[0], replicate.runs["v2"], out_dir / "figures" / "progression.png")


# ---- markdown ------------------------------------------------------------------------------------

def plain_sentence(pooled: dict, n_test: int, replicates: int) -> str:
    """What the interval and the test say, in one or two sentences (``replicates``: seeds on one
    test set; pass 1 for folds, whose test images appear once)."""
    acc, p = pooled["accuracy"], pooled["mcnemar"]["p_value"]
    span = f"{signed_pct(acc['estimate'])} points (95% CI {signed_pct(acc['low'])} to {signed_pct(acc['high'])})"
    interval_excludes_zero = acc["low"] > 0 or acc["high"] < 0
    if p < 0.05 and interval_excludes_zero:
        direction = "better" if acc["estimate"] > 0 else "worse"
        return (f"v2 did {direction} than v1 by {span}, McNemar p = {p:.3g}: on this test set the difference "
                "is unlikely to be chance alone. It is one dataset and one GAN; confirm it elsewhere before "
                "relying on it.")
    if p < 0.05:
        repeated = f", and each test image once per seed ({replicates} times)" if replicates > 1 else ""
        return (f"The evidence is weak: v2 − v1 = {span}. McNemar's test on the pooled pairs gives p = {p:.3g}, "
                f"but it counts every paired prediction as independent (images of one patient alike{repeated}), "
                "while the interval, which resamples test patients, includes zero. Treat the difference as "
                "unconfirmed.")
    return (f"The difference, {span}, is within what chance produces on {n_test} test images "
            f"(McNemar p = {p:.3g}): these data do not show that the synthetic images change accuracy.")


def headline_table(result: dict) -> str:
    """The v1 vs v2 table (also printed at the end of ``make demo``)."""
    a, pooled = result["across_replicates"], result["pooled"]
    reps = result["replicates"]

    def mean_of(key, model):
        values = [r[model][key] for r in reps if r[model][key] is not None]
        return sum(values) / len(values) if values else None

    rows = [[f"accuracy, mean ± sd over {a['v1_accuracy']['n']} replicate(s)", mean_sd(a["v1_accuracy"]),
             mean_sd(a["v2_accuracy"]), signed_interval(pooled["accuracy"])],
            ["covid recall (sensitivity)", pct(mean_of("covid_recall", "v1")), pct(mean_of("covid_recall", "v2")),
             signed_interval(pooled["covid_recall"])],
            ["covid precision", pct(mean_of("covid_precision", "v1")), pct(mean_of("covid_precision", "v2")),
             signed_interval(pooled["covid_precision"])],
            ["McNemar exact test (pooled discordant pairs)", f"{pooled['mcnemar']['only_a_right']} right only under v1",
             f"{pooled['mcnemar']['only_b_right']} right only under v2", f"p = {pooled['mcnemar']['p_value']:.3g}"]]
    oos = result.get("out_of_source")
    if isinstance(oos, dict):
        rows.append([f"out-of-source covid false positives ({oos['n']} images never trained on; lower is better)",
                     mean_sd(oos["v1"]), mean_sd(oos["v2"]), signed_interval(oos["delta"])])
    return "\n".join(markdown_table(["", "v1 (classical)", "v2 (+ synthetic)", "v2 − v1 [95% CI]"], rows))


def markdown(result: dict, replicates, out_dir: Path) -> str:
    def link(path: Path | str) -> str:
        return os.path.relpath(Path(path), out_dir)

    cfg, first = result["config"], replicates[0]
    n_test = result["replicates"][0]["v1"]["n"]
    out = [f"# Does CycleGAN augmentation help? {cfg['dataset']}, N = {cfg['n_synthetic']}", "",
           f"**Question.** {result['question']}", "",
           f"**Answer.** {plain_sentence(result['pooled'], n_test, 1 if cfg['folds'] else len(result['replicates']))}"
           + _out_of_source_sentence(result.get("out_of_source")), "",
           headline_table(result), "",
           "Accuracy in percent. Intervals of differences: paired bootstrap over test *patients* "
           "(10,000 resamples; all of a patient's images move together); per-model accuracy intervals "
           "(below): Wilson 95%.", ""]
    out += _data_section(result, cfg)
    out += _settings_section(result, replicates)
    out += ["## Results per replicate", ""] + markdown_table(
        ["replicate", "v1 accuracy [95% CI]", "v2 accuracy [95% CI]", "v2 − v1", "v1 covid recall", "v2 covid recall"],
        [[r["replicate"], *(f"{pct(r[m]['accuracy'])} [{pct(r[m]['accuracy_ci95'][0])}, "
                            f"{pct(r[m]['accuracy_ci95'][1])}]" for m in ("v1", "v2")),
          signed_pct(r["delta_accuracy"]), pct(r["v1"]["covid_recall"]), pct(r["v2"]["covid_recall"])]
         for r in result["replicates"]])
    spread = result["across_replicates"]["delta_accuracy"]
    out += ["", f"Paired differences over replicates: mean {signed_pct(spread['mean'])}, sd {pct(spread['std'])}, "
            f"range {signed_pct(spread['min'])} to {signed_pct(spread['max'])} points. Per-class precision, recall, "
            "specificity, F1 and ROC AUC of every run are in its `metrics.json` and `report.md`.", "",
            "Confusion matrices (first replicate):", "",
            f"![v1 confusion]({link(first.runs['v1'] / 'confusion.png')}) "
            f"![v2 confusion]({link(first.runs['v2'] / 'confusion.png')})", ""]
    if result["sweep"]:
        out += ["## Accuracy difference by number of synthetic images", ""]
        out += markdown_table(["N synthetic", "v2 − v1 [95% CI]"],
                              [[p["n"], signed_interval(p["delta_accuracy"])] for p in result["sweep"]]) + [""]
    out += _out_of_source_section(result)
    if "counterfactual" in result:
        out += _counterfactual_section(result)
    if "lung_gan" in result:
        out += _lung_gan_section(result, link, first)
    out += _gan_section(result, first, link)
    out += _audit_section(result, first, link)
    out += _progression_section(result, link)
    out += _papers_section(result)
    out += ["## Files", "", "Every number above is computed by `pipelines/experiment/analysis.py` from these files: "
            "each run's `predictions.csv` (per-image predictions), `metrics.json` and `gradcam.json` under "
            "`classify/`, the synthesis `report.json`, and `replicates.json`; all of it is in `report.json`.", ""]
    return "\n".join(out)


def _data_section(result: dict, cfg: dict) -> list[str]:
    counts = result["data"]["counts"]
    out = ["## Data", "", f"Dataset `{cfg['dataset']}`, {result['data']['patients']} patients, split by "
           "patient (no patient in two splits)" + (f"; {cfg['folds']}-fold grouped cross-validation, counts of "
                                                   "the first fold" if cfg["folds"] else "") + ".", ""]
    out += markdown_table(["split", *CLASSES], [[split, *(by[c] for c in CLASSES)] for split, by in counts.items()])
    out += ["", f"**Caveat.** {source_caveat(result['data']['train_sources'])} Synthetic images are used for "
            "training only; their parents are training images of the same split, and the GAN learned from "
            "training images only.", ""]
    return out


def _settings_section(result: dict, replicates) -> list[str]:
    c, g = result["settings"]["classifier"], result["settings"]["gan"]
    return ["## Settings", "",
            f"- Classifier: {c['backbone']}, weights {c['weights']}, {c['image_size']} px, batch {c['batch_size']}, "
            f"{c['epochs']} epochs, Adam lr {c['lr']}, model selected on the validation split; v1 augmentation "
            f"{c['augment']}.",
            f"- CycleGAN: {g['image_size']} px, ngf {g['ngf']}, {g['n_blocks']} residual blocks, "
            f"{g.get('upsample', 'transpose')} upsampling, {g['iterations']} "
            f"iterations, batch {g['batch_size']}, trained on the `{g['dataset']}` training split (normal → covid).",
            f"- Replicates: {', '.join(f'{r.name} (seed {r.seed})' for r in replicates)}.", ""]


def _out_of_source_sentence(oos) -> str:
    if not isinstance(oos, dict):
        return ""
    return (f" On {oos['n']} images from sources never trained on, none of them covid, v1 called "
            f"{pct(oos['v1']['mean'])}% covid and v2 {pct(oos['v2']['mean'])}% "
            f"(v2 − v1 {signed_interval(oos['delta'])} "
            "points): the higher these are, the more both models answer by image source rather than by "
            "disease, and the less the accuracy difference says about covid.")


def _out_of_source_section(result: dict) -> list[str]:
    oos = result["out_of_source"]
    out = ["## Out-of-source check: disease or source?", ""]
    if not isinstance(oos, dict):
        return out + [f"Not measured: {oos}.", ""]
    out += [f"Every classifier also classified the corpus images from sources its training set lacks for some "
            f"class ({', '.join(oos['sources'])}; {oos['n']} non-covid images, never trained on). Calling them covid "
            "is wrong whatever else they show, so the share called covid measures how much a model answers "
            "by image source rather than by disease.", ""]
    out += markdown_table(["replicate", "v1 covid false positives % [95% CI]", "v2 % [95% CI]"],
                          [[r["replicate"], *(f"{pct(r[m]['rate'])} [{pct(r[m]['ci95'][0])}, {pct(r[m]['ci95'][1])}]"
                                              for m in ("v1", "v2"))] for r in oos["per_replicate"]])
    out += ["", f"v2 − v1, pooled over replicates: {signed_interval(oos['delta'])} points (bootstrap over patients)."]
    for name, control in result.get("lung_controls", {}).items():
        if control["out_of_source_covid_fp"]:
            out.append(f"The {name} control calls {pct(control['out_of_source_covid_fp']['rate'])}% of them covid.")
    out += ["", "**Per source (internal test split, pooled over replicates).** Accuracy within one source cannot "
            "come from the source:", ""]
    v1, v2 = result["per_source"]["v1"], result["per_source"]["v2"]
    replicates = len(result["replicates"])
    rows = [[source, v1[source]["accuracy"]["n"] // replicates, pct(v1[source]["accuracy"]["rate"]),
             pct(v2[source]["accuracy"]["rate"]),
             f"{' vs '.join(v1[source]['within_source']['classes'])}: "
             f"{pct(v1[source]['within_source']['accuracy']['rate'])} / "
             f"{pct(v2[source]['within_source']['accuracy']['rate'])}" if "within_source" in v1[source] else None]
            for source in v1]
    return out + markdown_table(["source", "test images", "v1 accuracy %", "v2 accuracy %",
                                 "within one source: v1 / v2 %"], rows) + [""]


def _gan_section(result: dict, first, link) -> list[str]:
    s = result["synthesis"]
    m = s["metrics"]
    pixels = {k: v for k, v in m.items() if k != "realism"}
    realism = realism_lines(m) if "realism" in m else ["(made before the realism measures: `cxr gan realism "
                                                       "FOLDER` measures it)", ""]
    return ["## Synthetic images", "",
            f"{s['n']} images from GAN run `{s['gan_run']}` (checkpoint sha256 {s['checkpoint_sha256'][:12]}…), "
            f"parents drawn with seed {s['seed']}.", "", "### Realism", "", *realism,
            "### Pixel measurements", "", "```", _dump(pixels), "```", "",
            f"![parents and synthetic images]({link(first.synthetic / 'report.png')})", ""]


def _dump(data, indent: int = 0) -> str:
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(" " * indent + f"{key}:")
            lines.append(_dump(value, indent + 2))
        else:
            lines.append(" " * indent + f"{key}: {value:.4g}" if isinstance(value, float) else
                         " " * indent + f"{key}: {value}")
    return "\n".join(lines)


def _audit_section(result: dict, first, link) -> list[str]:
    share = result["gradcam_border_share"]
    out = ["## Shortcut audit", "",
           f"**Grad-CAM border share.** Share of CAM mass in the outer {int(share['v1']['band'] * 100)}% band of "
           f"each side, which covers {pct(share['v1']['border_area'])}% of the image (a map spread evenly would "
           f"put that share there). v1: {pct(share['v1']['mean'])}%, v2: {pct(share['v2']['mean'])}% (mean "
           "over test images and replicates). Much more than the area share means attention on borders, "
           "text markers and edges rather than the lungs.", ""]
    out += markdown_table(["true class", "v1 border share %", "v2 border share %"],
                          [[c, pct(share["v1"]["by_true_class"][c]), pct(share["v2"]["by_true_class"][c])]
                           for c in CLASSES])
    if "lung_controls" in result:
        out += ["", "**Lung controls.** The v1 recipe retrained and tested (first replicate) on part of each image. "
                "The lungs come from the lung segmenter (human-drawn masks, cross-fitted so that no image is "
                "segmented by a model that saw its patient). A control that never sees the lungs' grey levels "
                "and still beats the commonest class finds the label outside them.", "",
                *controls_markdown(result["lung_controls"], result.get("lung_controls_v1"))]
    out += ["", "Grad-CAM for the predicted class, first replicate, up to 16 test images per true class:", ""]
    for c in CLASSES:
        out.append(f"- {c}: v1 ![v1 {c}]({link(first.runs['v1'] / 'gradcam' / f'grid_{c}.png')}) "
                   f"v2 ![v2 {c}]({link(first.runs['v2'] / 'gradcam' / f'grid_{c}.png')})")
    return out + [""]


def _progression_section(result: dict, link) -> list[str]:
    p = result["progression"]
    if p is None:
        return ["## Disease progression", "", "No test patient has three or more dated images.", ""]
    return ["## Disease progression", "",
            f"Patient `{p['patient_id']}` (test split, never seen in training): images in time order with the "
            f"v2 model's probabilities and Grad-CAM (after Zebin & Rezvy 2020, Fig. 8).", "",
            f"![progression]({link(p['figure'])})", ""]


def _papers_section(result: dict) -> list[str]:
    ours = result["across_replicates"]
    c = result["settings"]["classifier"]
    rows = [[paper, setting, model, pct(acc)] for paper, setting, model, acc in PAPERS]
    rows += [["this run", "v1", f"{c['backbone']} ({c['weights']})", pct(ours["v1_accuracy"]["mean"])],
             ["this run", f"v2 (+{result['config']['n_synthetic']})", f"{c['backbone']} ({c['weights']})",
              pct(ours["v2_accuracy"]["mean"])]]
    out = ["## Beside the published numbers", ""] + markdown_table(["source", "setting", "model", "accuracy %"], rows)
    out += ["",
            f"Differences in setup: {PAPER_SETUP} Here: dataset `{result['config']['dataset']}`, patient-level "
            f"splits, {c['image_size']} px, weights {c['weights']}, {c['epochs']} epochs on a CPU. Their numbers are "
            "not a target: the paediatric-vs-adult contrast lets a model separate covid by age.", ""]
    return out
