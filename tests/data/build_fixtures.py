"""Rebuild ``tests/data/`` from the real corpus: the small real image set that lets the tests run
from a plain clone (conftest.py uses it where ``../shared/data`` is absent).

    .venv/bin/python tests/data/build_fixtures.py ../shared/data

Takes whole patients, in patient-id order, until each (source, label) has its quota; shrinks
every image to at most 128 px (Lanczos, 8-bit grayscale PNG) and writes ``cxr/metadata.csv`` in
the corpus's own format (``sha256``, ``width``, ``height`` of the small file; the upstream
``original_*``, ``license`` and ``url`` kept). ``raw-samples/`` is copied unchanged;
``raw-samples.csv`` beside it names where each raw file comes from. ``lung-masks/`` holds the
human lung masks (V7 Labs, CC BY 4.0) of the chosen images, resized to the small images' sizes
(bilinear, thresholded at 128, as the shared masks were made) with ``lung-masks.csv`` in the
shared format.
"""
from __future__ import annotations

import csv
import hashlib
import shutil
import sys
from collections import defaultdict
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 128
# Curated (cxr3) images per (source, label), then Makris et al.'s published-split images per
# (label, split) on top of them.
QUOTAS = {("ieee8023", "covid"): 18, ("figure1", "covid"): 6, ("nih", "normal"): 18, ("ieee8023", "normal"): 4,
          ("figure1", "normal"): 3, ("nih", "pneumonia"): 18, ("ieee8023", "pneumonia"): 16,
          ("figure1", "pneumonia"): 2}
MAKRIS_PER_SPLIT = 5


def pick(rows: list[dict]) -> list[dict]:
    chosen: dict[str, dict] = {}
    by_patient = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["patient_id"], r["image_id"])):
        by_patient[row["patient_id"] or row["image_id"]].append(row)
    counts = defaultdict(int)

    def take(wanted, key, quota):
        for images in by_patient.values():
            if counts[key] >= quota:
                return
            if all(wanted(r) for r in images):
                for r in images:
                    if r["image_id"] not in chosen:
                        chosen[r["image_id"]] = r
                        counts[key] += 1

    for (source, label), quota in QUOTAS.items():
        take(lambda r: r["curated"] == "1" and (r["source"], r["label"]) == (source, label), (source, label), quota)
    for label in ("normal", "covid", "pneumonia"):
        for split in ("train", "test"):
            take(lambda r: (r["label"], r["makris2020_split"]) == (label, split), (label, split), MAKRIS_PER_SPLIT)
    return sorted(chosen.values(), key=lambda r: r["image_id"])


def shrink(source: Path, target: Path) -> tuple[int, int]:
    with Image.open(source) as image:
        image = image.convert("L")
        image.thumbnail((SIZE, SIZE), Image.LANCZOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, optimize=True)
        return image.size


def shrink_masks(shared_data: Path, chosen: list[dict]) -> int:
    """The human lung masks of ``chosen`` at the small images' sizes, and their lung-masks.csv."""
    with open(shared_data / "lung-masks" / "lung-masks.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, [r for r in reader]
    sizes = {r["image_id"]: (int(r["width"]), int(r["height"])) for r in chosen}
    out = HERE / "lung-masks"
    shutil.rmtree(out, ignore_errors=True)
    kept = []
    for row in rows:
        if row["image_id"] not in sizes:
            continue
        with Image.open(shared_data / "lung-masks" / row["mask"]) as mask:
            small = mask.convert("L").resize(sizes[row["image_id"]], Image.BILINEAR).point(lambda v: 255 * (v >= 128))
        target = out / row["mask"]
        target.parent.mkdir(parents=True, exist_ok=True)
        small.save(target, optimize=True)
        histogram = small.histogram()
        row["lung_fraction"] = f"{histogram[255] / sum(histogram):.3f}"
        kept.append(row)
    with open(out / "lung-masks.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    return len(kept)


def main(shared_data: Path) -> None:
    with open(shared_data / "cxr" / "metadata.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, list(reader)
    out = HERE / "cxr"
    shutil.rmtree(out, ignore_errors=True)
    chosen = pick(rows)
    for row in chosen:
        target = out / row["path"]
        row["width"], row["height"] = shrink(shared_data / "cxr" / row["path"], target)
        row["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(chosen)
    raw = HERE / "raw-samples"
    for file in sorted((shared_data / "raw-samples").iterdir()):
        shutil.copyfile(file, raw / file.name)
    masks = shrink_masks(shared_data, chosen)
    print(f"{len(chosen)} images in {out}, {masks} lung masks")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
