"""How good the lung segmenter is, and what it does where no human drew lungs.

* On the human masks: every annotated image is segmented by the fold model that never saw its
  patient (cross-fitting), so the Dice and HD95 per source and label are held-out figures.
* Elsewhere (NIH, figure1, ieee8023 normal and pneumonia): the lung-area fraction, the number of
  pieces and how many masks are implausible, per source and label, and a grid of random overlays.
"""
from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from runkit.formatting import decimal, markdown_table, pct
from runkit.rundir import write_csv, write_json

from ..manifest import Manifest, Record
from .cache import image_and_mask, lung_masks
from .geometry import dice, hd95, shape_of
from .human import read_mask
from .segmenter import Segmenter

OVERLAYS = 32
DICE_AIM = 0.95


def group_of(record: Record) -> str:
    return f"{record.source} {record.label}"


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    quantiles = {f"p{q:02d}": float(np.percentile(a, q)) for q in (5, 25, 75, 95)}
    return {"mean": float(a.mean()), "sd": float(a.std()), "median": float(np.median(a)), "min": float(a.min()),
            **quantiles}


def held_out_scores(segmenter: Segmenter, annotated: Manifest, progress: bool = True) -> list[dict]:
    """Dice and HD95 (pixels at the corpus image's size) of every annotated image's cross-fitted mask."""
    unseen = [r for r in annotated if r.patient_id not in segmenter.patient_folds]
    if unseen:
        raise ValueError(f"{len(unseen)} annotated image(s) (e.g. {unseen[0].path}) belong to patients this "
                         f"segmenter ({segmenter.path}) did not hold out; it was trained on other masks")
    predicted = lung_masks(annotated, segmenter, progress)
    rows = []
    for record, mask in tqdm(list(zip(annotated, predicted)), desc="scoring against the human masks",
                             disable=not progress, unit="img"):
        truth = read_mask(record)
        rows.append({"image_id": record.extra["image_id"], "group": group_of(record), "patient_id": record.patient_id,
                     "fold": segmenter.patient_folds[record.patient_id], "dice": dice(mask, truth),
                     "hd95_px": hd95(mask, truth), "predicted_fraction": float(mask.mean()),
                     "human_fraction": float(truth.mean())})
    return rows


def unannotated_shapes(segmenter: Segmenter, corpus: Manifest, annotated: Manifest,
                       progress: bool = True) -> list[dict]:
    """Shape of the predicted lungs of every corpus image without a human mask."""
    drawn = {r.sha256 for r in annotated}
    rest = Manifest([r for r in corpus if r.sha256 not in drawn], name=f"{corpus.name} without human masks")
    rows = []
    for record, mask in zip(rest, lung_masks(rest, segmenter, progress)):
        shape = shape_of(mask)
        rows.append({"image_id": record.extra.get("image_id", record.path), "group": group_of(record),
                     "path": record.path, "fraction": shape.fraction, "pieces": shape.pieces,
                     "problem": shape.problem or ""})
    return rows


def _by_group(rows: list[dict]) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for row in rows:
        groups[row["group"]].append(row)
    return dict(sorted(groups.items()))


def summarise(scores: list[dict], shapes: list[dict]) -> dict:
    held_out = {}
    for group, rows in _by_group(scores).items():
        held_out[group] = {"images": len(rows), "patients": len({r["patient_id"] for r in rows}),
                           "dice": _summary([r["dice"] for r in rows]),
                           "hd95_px": _summary([r["hd95_px"] for r in rows]),
                           "below_aim": sum(r["dice"] < DICE_AIM for r in rows)}
    elsewhere = {}
    for group, rows in _by_group(shapes).items():
        elsewhere[group] = {"images": len(rows), "fraction": _summary([r["fraction"] for r in rows]),
                            "pieces": {str(k): sum(r["pieces"] == k for r in rows)
                                       for k in sorted({r["pieces"] for r in rows})},
                            "implausible": sum(bool(r["problem"]) for r in rows)}
    return {"held_out": held_out, "elsewhere": elsewhere, "dice_aim": DICE_AIM}


def report_markdown(summary: dict, segmenter: Segmenter, command: str, machine: str, date: str) -> str:
    lines = [f"# Lung segmenter: {segmenter.path.name} (sha256 {segmenter.checksum[:16]}…)", "",
             f"{segmenter.folds} fold models (U-Net, EfficientNet-Lite0 encoder from ImageNet, "
             f"{segmenter.image_size} px), each scored on the patients it never saw. Command `{command}`; "
             f"{machine}; {date}.", "",
             "## On the human masks (V7 Labs), held-out patients", ""]
    lines += markdown_table(
        ["source and label", "images", "patients", "Dice mean ± sd", "Dice median", "Dice 5th pct", f"below {DICE_AIM}",
         "HD95 px median [IQR]"],
        [[group, s["images"], s["patients"], f"{decimal(s['dice']['mean'])} ± {decimal(s['dice']['sd'])}",
          decimal(s["dice"]["median"]), decimal(s["dice"]["p05"]), s["below_aim"],
          f"{s['hd95_px']['median']:.1f} [{s['hd95_px']['p25']:.1f}, {s['hd95_px']['p75']:.1f}]"]
         for group, s in summary["held_out"].items()], right=(1, 2, 4, 5, 6))
    lines += ["", "HD95: 95th-percentile boundary distance in pixels of the corpus image (longer side ≤ 512 px).", "",
              "## Where no human drew lungs", ""]
    lines += markdown_table(
        ["source and label", "images", "lung area % median [5th, 95th pct]", "pieces (count: images)", "implausible"],
        [[group, s["images"], f"{pct(s['fraction']['median'])} [{pct(s['fraction']['p05'])}, "
                              f"{pct(s['fraction']['p95'])}]", ", ".join(f"{k}: {n}" for k, n in s["pieces"].items()),
          s["implausible"]] for group, s in summary["elsewhere"].items()], right=(1, 4))
    lines += ["", "![32 random images without human masks, predicted lungs outlined](overlays.png)", ""]
    return "\n".join(lines)


def save_overlays(path: Path, segmenter: Segmenter, records: list[Record], title: str) -> None:
    """A grid of images with their predicted lungs outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 8
    rows = max(1, -(-len(records) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, record in zip(axes.ravel(), records):
        gray, mask = image_and_mask(record, segmenter)
        ax.imshow(gray, cmap="gray")
        ax.contour(mask, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{group_of(record)}\n{shape_of(mask).fraction:.0%} lungs", fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def write_report(out: Path, segmenter: Segmenter, corpus: Manifest, annotated: Manifest, command: str,
                 machine: str, date: str, progress: bool = True, seed: int = 0) -> dict:
    """``report.md``, ``report.json``, ``held_out.csv``, ``elsewhere.csv`` and ``overlays.png`` in ``out``."""
    scores = held_out_scores(segmenter, annotated, progress)
    shapes = unannotated_shapes(segmenter, corpus, annotated, progress)
    summary = summarise(scores, shapes)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "held_out.csv", list(scores[0]), [list(r.values()) for r in scores])
    write_csv(out / "elsewhere.csv", list(shapes[0]), [list(r.values()) for r in shapes])
    drawn = {r.sha256 for r in annotated}
    pool = [r for r in corpus if r.sha256 not in drawn]
    chosen = random.Random(seed).sample(pool, min(OVERLAYS, len(pool)))
    save_overlays(out / "overlays.png", segmenter, chosen, f"{len(chosen)} random corpus images without human "
                  "masks: predicted lungs (red)")
    write_json(out / "report.json", {"segmenter": {"path": str(segmenter.path), "sha256": segmenter.checksum,
                                                   "folds": segmenter.folds, "info": segmenter.info},
                                     **summary, "command": command, "machine": machine, "date": date})
    (out / "report.md").write_text(report_markdown(summary, segmenter, command, machine, date), encoding="utf-8")
    return summary
