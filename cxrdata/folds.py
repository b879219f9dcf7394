"""Grouped, stratified k-fold manifests: every patient's images stay in one fold.

Fold ``i`` tests on part ``i``; about 10 % of all images (whole patients) from the other parts
become its validation split for model selection; the rest train.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from cxrdata.manifest import CLASSES, Manifest
from cxrdata.splits import EXTRA_COLUMNS, grouped_stratified_split

VAL_SHARE = 0.1


def kfold_manifests(manifest: Manifest, k: int, seed: int) -> list[Manifest]:
    """``k`` manifests over all of ``manifest``'s images, each with train/val/test reassigned."""
    _check_enough(manifest, k)
    rows = [{"image_id": str(i), "patient_id": r.patient_id, "label": r.label, "sha256": r.sha256}
            for i, r in enumerate(manifest)]
    part_of = grouped_stratified_split(rows, {str(p): 1 / k for p in range(k)}, seed)
    folds = []
    for fold in range(k):
        rest = [row for row in rows if part_of[row["patient_id"]] != str(fold)]
        val_share = VAL_SHARE / (1 - 1 / k)
        inner = grouped_stratified_split(rest, {"train": 1 - val_share, "val": val_share}, seed + fold + 1)
        split = {p: "test" for p, part in part_of.items() if part == str(fold)} | inner
        records = [replace(r, split=split[r.patient_id]) for r in manifest]
        folds.append(Manifest(records, name=f"{manifest.name}-fold{fold}of{k}"))
    return folds


def write_folds(folds: list[Manifest], out_dir: Path) -> list[Path]:
    """Write each fold as ``<out_dir>/<name>.csv`` (paths stay relative to the data root)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fold in folds:
        path = out_dir / f"{fold.name}.csv"
        fold.write(path, extra_columns=EXTRA_COLUMNS)
        paths.append(path)
    return paths


def _check_enough(manifest: Manifest, k: int) -> None:
    if k < 2:
        raise ValueError(f"--folds {k}: k-fold needs at least 2 folds")
    patients = Counter()
    for label in CLASSES:
        patients[label] = len({r.patient_id for r in manifest if r.label == label})
    short = {c: n for c, n in patients.items() if n < 2 * k}
    if short:
        raise ValueError(f"--folds {k}: too few patients for {k} folds in {manifest.name} "
                         f"({', '.join(f'{c}: {n}' for c, n in short.items())}; each class needs at least "
                         f"{2 * k} patients so every fold's test and validation parts hold some)")
