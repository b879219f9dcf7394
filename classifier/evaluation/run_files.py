"""Files a run leaves behind: predictions CSV, confusion-matrix PNG, CAM overlays and grids,
report.md. Pure writers: they take numbers and images, never a model."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxrdata import CLASSES, Manifest

from runkit.rundir import write_csv
from runkit.formatting import decimal, markdown_table

from classifier.evaluation.crosssource import cross_source_markdown, per_source_markdown, source_caveat
from classifier.model.weights import describe_weights

PREDICTION_COLUMNS = ("image_id", "path", "patient_id", "source", "true", "predicted",
                      *(f"p_{c}" for c in CLASSES))
CAM_ALPHA = 0.4
GRID_SIZE = 16


def image_id(record) -> str:
    """The manifest's image_id, else the file stem (safe as a file name)."""
    return (record.extra.get("image_id") or Path(record.path).stem).replace(os.sep, "_")


def write_predictions(path: Path, manifest: Manifest, probabilities: np.ndarray,
                      extra: dict[str, list[str]] | None = None) -> None:
    """One row per image: ids, true and predicted class names, class probabilities, and the
    ``extra`` columns (name → one value per image)."""
    extra = extra or {}
    write_csv(path, PREDICTION_COLUMNS + tuple(extra),
              ([image_id(record), record.path, record.patient_id, record.source, record.label,
                CLASSES[int(probs.argmax())], *(f"{p:.6f}" for p in probs), *(values[i] for values in extra.values())]
               for i, (record, probs) in enumerate(zip(manifest, probabilities))))


def overlay(gray: np.ndarray, cam: np.ndarray, alpha: float = CAM_ALPHA) -> np.ndarray:
    """An RGB uint8 image: ``gray`` (H, W uint8) under a jet-coloured ``cam`` (H, W in [0, 1])."""
    heat = matplotlib.colormaps["jet"](np.clip(cam, 0, 1))[..., :3]
    base = np.repeat(gray[..., None] / 255.0, 3, axis=2)
    return np.rint(255 * ((1 - alpha) * base + alpha * heat)).astype(np.uint8)


def save_overlay(path: Path, gray: np.ndarray, cam: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay(gray, cam)).save(path)


def save_confusion(path: Path, matrix: list[list[int]], title: str) -> None:
    """The confusion matrix (rows true, columns predicted) with counts in each cell."""
    matrix = np.asarray(matrix)
    fig = Figure(figsize=(4.6, 4))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center",
                color="white" if n > matrix.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


TILE = 220  # px a grid shows each image at
CAPTION, TITLE, GAP = 30, 34, 6  # px of a tile's two caption lines, of the title, between tiles


def save_grid(path: Path, tiles: list[np.ndarray], captions: list[str], title: str) -> None:
    """Up to :data:`GRID_SIZE` RGB tiles in a square grid with a caption each, composed with Pillow
    (drawn by matplotlib, three grids took most of an evaluation's time)."""
    columns = max(1, int(np.ceil(np.sqrt(len(tiles)))))
    rows = max(1, int(np.ceil(len(tiles) / columns)))
    font, title_font = ImageFont.load_default(size=10), ImageFont.load_default(size=13)
    width = max(columns * (TILE + GAP) + GAP, int(title_font.getlength(title)) + 2 * GAP)
    grid = Image.new("RGB", (width, TITLE + rows * (CAPTION + TILE + GAP)), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((width // 2, TITLE // 2), title, fill="black", font=title_font, anchor="mm")
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        left = GAP + (i % columns) * (TILE + GAP)
        top = TITLE + (i // columns) * (CAPTION + TILE + GAP)
        draw.multiline_text((left + TILE // 2, top + CAPTION // 2), caption, fill="black", font=font, anchor="mm",
                            align="center", spacing=2)
        grid.paste(Image.fromarray(tile).resize((TILE, TILE), Image.Resampling.BICUBIC), (left, top + CAPTION))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def confusion_markdown(matrix: list[list[int]]) -> list[str]:
    """The confusion-matrix section: a table (rows true, columns predicted) and confusion.png."""
    return (["## Confusion matrix (rows true, columns predicted)", ""]
            + markdown_table(["true \\ predicted", *CLASSES], [[name, *row] for name, row in zip(CLASSES, matrix)])
            + ["", "![confusion matrix](confusion.png)"])


def report_markdown(summary: dict) -> str:
    """A readable report of a run's test metrics, class balance and shortcut indicator."""
    config, test, cam = summary["config"], summary["test"], summary["gradcam"]
    low, high = test["accuracy_ci95"]
    lines = [
        f"# Classifier run `{summary['run']}`", "",
        f"{config['backbone']} (weights {config['weights']}"
        + (f": {describe_weights(summary['initial_weights'])}" if summary.get("initial_weights") else "")
        + f"), {config['aug']}, {config['image_size']} px, "
        f"profile {config['profile']}, dataset {config['dataset']}"
        + (", **the central box hidden** (70 % × 70 %, 49 % of the image)" if config["hide_lungs"] else "")
        + (f", **region {config['region']}** (from the lung segmenter's masks)"
           if config.get("region", "full") != "full" else "") + ".", "",
        f"**Test accuracy {test['accuracy']:.3f}** ({test['correct']}/{test['n']}; Wilson 95% interval "
        f"{low:.3f}–{high:.3f}). Best epoch {summary['training']['best_epoch'] + 1} of "
        f"{summary['training']['epochs_run']} run, chosen on the validation split.", "",
        "One test set: differences between runs smaller than the interval width are not findings; "
        "compare runs with paired tests on predictions.csv.", "",
        "## Class balance", ""]
    lines += markdown_table(["split", *CLASSES], [[split, *(counts[c] for c in CLASSES)]
                                                  for split, counts in summary["class_balance"].items()])
    if summary["synthetic_train_images"]:
        lines += ["", f"Train includes {summary['synthetic_train_images']} synthetic images "
                  "(listed in train_images.csv)."]
    lines += ["", "## Per class (test)", ""]
    lines += markdown_table(
        ["class", "precision", "recall (sensitivity)", "specificity", "F1", "ROC AUC (one-vs-rest)", "n"],
        [[name, decimal(s["precision"]), decimal(s["recall"]), decimal(s["specificity"]), decimal(s["f1"]),
          decimal(s["roc_auc"]), s["support"]] if name in test["classes_present"] else
         [name, "absent from the test split (no images): not scored, not in the macro mean", "", "", "", "", 0]
         for name, s in test["per_class"].items()])
    m = test["macro"]
    lines.append(f"| **macro** | {decimal(m['precision'])} | {decimal(m['recall'])} | {decimal(m['specificity'])} "
                 f"| {decimal(m['f1'])} | {decimal(m['roc_auc'])} | {test['n']} |")
    if "per_source" in summary:
        lines += [""] + per_source_markdown(summary["per_source"])
        lines += cross_source_markdown(summary["cross_source"])
    lines += [""] + confusion_markdown(test["confusion_matrix"]) + ["",
              "## Grad-CAM shortcut indicator", "",
              f"Share of CAM mass in the border band (outer {cam['band']:.0%} of each side) for the "
              f"{cam['cam_class']} class: mean **{decimal(cam['mean_border_share'])}** over the test set; "
              f"a map spread evenly would give {cam['border_area']:.2f} (the band's share of the area). "
              "Well above that, the model attends to image edges (markers, text, borders) more than "
              "to the lungs: suspect a shortcut.", "",
              "The second measure asks the question directly: the share of CAM mass inside the lungs (the "
              "lung segmenter's masks, in the frame the model sees), beside the lungs' share of the image. A "
              "model reading the lungs puts more of its map there than their area; one reading the "
              "surroundings, less.", ""]
    lines += markdown_table(
        ["true class", "mean border share", "mean share inside the lungs", "lungs' share of the image"],
        [[name, decimal(value), decimal(cam.get("mean_lung_share_by_true_class", {}).get(name)),
          decimal(cam.get("mean_lung_area_by_true_class", {}).get(name))]
         for name, value in cam["mean_border_share_by_true_class"].items()])
    lines += ["", f"Overlays for {cam.get('overlays', 'every image')} of the test split: `gradcam/overlays/`; "
              "grids per true class: `gradcam/grid_<class>.png`; per-image values: `gradcam.json`.", ""]
    return "\n".join(lines + ["## Caveat", "", source_caveat(summary["train_sources"]), ""])
