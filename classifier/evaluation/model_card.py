"""MODEL_CARD.md: a trained run's evidence in one page (Mitchell et al. 2019), from the run's own
files only (config.json, metrics.json, train_images.csv, finished.json, gradcam/), so that a
model never travels without the warning that it may answer by image source."""
from __future__ import annotations

import csv
import os
import platform
import shutil
from collections import Counter
from pathlib import Path

from cxrdata import CLASSES
from cxrdata.lungs.regions import REGION_NOTES
from cxrdata.manifest import sha256_of
from runkit.rundir import read_json, write_bytes
from runkit.formatting import decimal, markdown_table, pct, rate_with_ci

from classifier.model.weights import describe_weights


MOST, OFTEN = 0.5, 0.2  # out-of-source covid false-positive rates read as "most" and "often"


def _versions() -> str:
    import numpy
    import torch
    import torchvision

    parts = [f"Python {platform.python_version()}", f"torch {torch.__version__}",
             f"torchvision {torchvision.__version__}", f"numpy {numpy.__version__}"]
    try:
        import timm
        parts.append(f"timm {timm.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def _training_counts(run_dir: Path) -> tuple[dict, Counter, int]:
    """Images per (label, source) of the training split, and its patients."""
    with open(run_dir / "train_images.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return Counter((r["label"], r["source"]) for r in rows), Counter(r["label"] for r in rows), \
        len({r["patient_id"] for r in rows if r["patient_id"]})


def _results(test: dict) -> list[str]:
    low, high = test["accuracy_ci95"]
    rows = []
    for c in CLASSES:
        s = test["per_class"][c]
        ci = f" [{pct(s['recall_ci95'][0])}–{pct(s['recall_ci95'][1])}]" if s.get("recall_ci95") else ""
        rows.append([c, pct(s["precision"]), f"{pct(s['recall'])}{ci}", pct(s["specificity"]), pct(s["f1"]),
                     decimal(s["roc_auc"]), s["support"]])
    return ([f"Accuracy {pct(test['accuracy'])} % on {test['n']} test images (95 % CI {pct(low)}–{pct(high)} %).", ""]
            + markdown_table(["class (%)", "precision", "recall [95 % CI]", "specificity", "F1", "ROC AUC",
                              "test images"], rows))


def _source_reading(block) -> list[str]:
    if not isinstance(block, dict):
        return [f"Not measured for this run: {block}."]
    rate = block["covid_false_positive"]
    if not rate["n"]:
        return ["Every image from a source this model did not train on is covid; no false-positive rate."]
    share = rate["rate"]
    verdict = ("calls **most** non-covid images from sources it never trained on covid: it answers by image "
               "source, not by disease" if share >= MOST else
               "**often** calls non-covid images from unseen sources covid: image source sways it" if share >= OFTEN
               else "rarely calls non-covid images from unseen sources covid")
    lines = [f"Non-covid images from sources the training set lacks for their class, called covid: "
             f"{rate_with_ci(rate)}. "
             f"In plain words: this model {verdict}.", ""]
    return lines + markdown_table(["source", "true class", "images", "called covid %"],
                                  [[source, label, entry["n"], pct(entry["predicted"]["covid"]["rate"])]
                                   for source, labels in block["sources"].items() for label, entry in labels.items()])


def _audit(metrics: dict) -> list[str]:
    lines = []
    for source, entry in metrics["per_source"].items():
        within = entry.get("within_source")
        if within:
            lines.append(f"- Within {source} ({' vs '.join(within['classes'])}), where the source cannot give the "
                         f"answer away: accuracy {rate_with_ci(within['accuracy'])}.")
    cams = metrics.get("gradcam", {})
    if cams.get("mean_border_share") is not None:
        share, area = cams["mean_border_share"], cams["border_area"]
        where = ("more than the border's share of the image: the maps lean to borders, labels and framing"
                 if share > area else "less than the border's share of the image")
        lines.append(f"- Grad-CAM: {pct(share)} % of each map's weight lies in the outer {pct(cams['band'])} % band, "
                     f"which is {pct(area)} % of the image: {where}.")
    if cams.get("mean_lung_share") is not None:
        inside, lungs = cams["mean_lung_share"], cams["mean_lung_area"]
        lines.append(f"- Grad-CAM: {pct(inside)} % of each map's weight lies inside the predicted lungs, which "
                     f"cover {pct(lungs)} % of the image the model sees: "
                     + ("the maps lean to the lungs." if inside > lungs else "the maps lean away from the lungs."))
    return lines or ["- No within-source comparison was possible on this test split."]


def write_model_card(run_dir: Path | str, path: Path | str, export_dir: Path | None = None,
                     checks: dict | None = None) -> Path:
    """Write the model card of finished run ``run_dir`` to ``path``; in an export, copy its Grad-CAM
    grids beside it and list every file's sha256."""
    run_dir, path = Path(run_dir), Path(path)
    config, metrics = read_json(run_dir / "config.json"), read_json(run_dir / "metrics.json")
    finished = read_json(run_dir / "finished.json") if (run_dir / "finished.json").is_file() else {}
    per_source_label, per_label, patients = _training_counts(run_dir)
    precision = config.get("runtime", {}).get("precision", "fp32")
    finished_at = finished.get("finished_at", "not yet")[:19].replace("T", " ")
    balance = metrics.get("class_balance", {})
    weights = {"imagenet": "ImageNet (ImageNet's terms of use apply: non-commercial research and education)",
               "none": "none (trained from scratch)"}.get(config["weights"], f"the state dict {config['weights']}")
    started = config.get("runtime", {}).get("weights")
    if started and started.get("weights") != "none":
        weights += f": {describe_weights(started)}"
    lines = [f"# Model card: {run_dir.resolve().name}", "",
             "## Intended use", "",
             "Research on chest X-ray classification and on shortcut learning. **Not for diagnosis or any clinical "
             "decision.** It was trained and tested on public images whose classes come from different sources "
             "(below), which no clinical population resembles.", "",
             "## Model", "",
             f"- {config['backbone']} with a new `{config.get('head', 'linear')}` head; pretrained weights: {weights}.",
             f"- Input: one grayscale channel, {config['image_size']} × {config['image_size']} px in [0, 1]"
             + ("; histogram equalised inside the model" if config.get("equalize") else "")
             + ("; the central 70 % × 70 % box blacked out" if config.get("hide_lungs") else "")
             + (f"; region {config['region']}: {REGION_NOTES[config['region']]}"
                if config.get("region", "full") != "full" else "") + ".",
             f"- Training: {config['aug']} augmentation, {metrics['training']['epochs_run']} epochs (Adam lr "
             f"{config['lr']:g}, batch {config['batch_size']}), model kept: {config.get('select', 'best-val')} "
             f"(epoch {metrics['training']['best_epoch'] + 1}); precision {precision}; seed {config['seed']}; "
             f"finished {finished_at} UTC.", "",
             "## Training data", "",
             f"Manifest `{config['dataset']}`; training split: {sum(per_label.values())} images of {patients} patients "
             f"({metrics.get('synthetic_train_images', 0)} synthetic).", ""]
    lines += markdown_table(["split", *CLASSES], [[split, *(counts.get(c, 0) for c in CLASSES)]
                                                  for split, counts in balance.items()])
    lines += ["", "Training images by source: " + "; ".join(f"{label} from {source}: {n}" for (label, source), n
                                                          in sorted(per_source_label.items())) + ".", "",
              "## Results on the test split", ""] + _results(metrics["test"])
    lines += ["", "## Known limitation: image source", ""] + _source_reading(metrics.get("cross_source"))
    lines += ["", "## Shortcut audit", ""] + _audit(metrics)
    grids = sorted((run_dir / "gradcam").glob("grid_*.png"))
    if grids:
        lines += ["", "## Grad-CAM", ""]
        for grid in grids:
            target = grid
            if export_dir is not None:
                target = export_dir / "gradcam" / grid.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(grid, target)
            lines.append(f"![{grid.stem}]({Path(os.path.relpath(target, path.parent)).as_posix()})")
    lines += ["", "## Software", "", f"{_versions()} (when this card was written)."]
    onnx = (checks or {}).get("onnx")
    if onnx:
        lines.append(f"ONNX check: ONNX Runtime {onnx['onnxruntime']} equals the model within {onnx['tolerance']:.1e} "
                     f"on {onnx['images']} test images (largest difference {onnx['largest_difference']:.1e})."
                     if onnx["checked"] else f"ONNX check skipped: {onnx['why']}.")
    if export_dir is not None:
        files = sorted(p for p in export_dir.rglob("*") if p.is_file() and p != path)
        lines += ["", "## Files (sha256)", ""]
        lines += markdown_table(["file", "sha256"], [[p.relative_to(export_dir).as_posix(), f"`{sha256_of(p)}`"]
                                                     for p in files])
    write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path
