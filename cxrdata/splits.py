"""Build the committed manifests from the corpus' ``metadata.csv``, deterministically.

* ``cxr3.csv``: the curated adult set, split train/val/test ≈ 70/10/20, stratified by label and
  grouped by patient (no patient in two splits).
* ``makris2020.csv``: Makris et al. 2020's published train/test split, with a patient-level
  validation split carved out of train. Its patient leakage between train and test is
  reported, not fixed: it is the published split.
"""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .manifest import CLASSES, Manifest, Record

EXTRA_COLUMNS = ("image_id", "view", "sex", "age", "offset_days", "finding", "width", "height")
CXR3_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
MAKRIS_VAL_FRACTION = 0.1
DEFAULT_SEED = 2020


@dataclass
class Leakage:
    """Patients of a published split that have images in both train and test."""

    patients: list[str]
    images: int

    def describe(self, name: str) -> str:
        if not self.patients:
            return f"{name}: no patient appears in both train and test."
        return (f"{name}: LEAKAGE: {len(self.patients)} patients ({self.images} images) appear in both "
                f"train and test of the published split: {', '.join(self.patients)}")


def patient_of(row: dict) -> str:
    """The grouping key: the patient id, or the image id for an image with no patient."""
    return row["patient_id"] or f"{row['image_id']}"


def grouped_stratified_split(rows: list[dict], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Assign each patient to a split so label counts approach ``fractions`` in every split.

    Greedy over patients in a seeded random order: each patient goes to the split whose
    remaining quota for that patient's labels is largest relative to the split's target, so
    splits fill in proportion and a patient's number of images does not decide its split.
    Patients whose images share bytes (one picture published under two case ids; rows with a
    ``sha256``) then follow the first of them into its split, so no image is in two splits.
    Returns ``{patient: split}``.
    """
    groups: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        groups[patient_of(row)][row["label"]] += 1
    totals = Counter(row["label"] for row in rows)
    wanted = {s: {c: f * totals[c] for c in CLASSES} for s, f in fractions.items()}
    have = {s: Counter() for s in fractions}
    order = sorted(groups)
    order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    assignment = {}
    for patient in order:
        counts = groups[patient]

        def room(split: str) -> float:
            return sum((wanted[split][c] - have[split][c]) / wanted[split][c] * n
                       for c, n in counts.items() if wanted[split][c] > 0)

        split = max(fractions, key=room)  # first split wins ties, deterministically
        assignment[patient] = split
        have[split].update(counts)
    linked, first = _linked(rows), {}  # linked patients take the split of the first of them
    for patient in order:
        first.setdefault(linked[patient], assignment[patient])
    return {patient: first[linked[patient]] for patient in assignment}


def _linked(rows: list[dict]) -> dict[str, str]:
    """``{patient: representative}``: patients are linked when their images share a sha256."""
    parent: dict[str, str] = {}

    def root(p: str) -> str:
        while parent.setdefault(p, p) != p:
            p = parent[p]
        return p

    holder: dict[str, str] = {}
    for row in rows:
        patient = patient_of(row)
        root(patient)
        if row.get("sha256"):
            other = holder.setdefault(row["sha256"], patient)
            parent[root(patient)] = root(other)
    return {p: root(p) for p in parent}


def read_metadata(metadata_csv: Path) -> list[dict]:
    with open(metadata_csv, newline="", encoding="utf-8") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: r["image_id"])


def _manifest(rows: list[dict], splits: dict[str, str], name: str) -> Manifest:
    records = [Record(path=r["path"], label=r["label"], split=splits[r["image_id"]],
                      patient_id=patient_of(r), source=r["source"], sha256=r["sha256"],
                      file=Path(r["path"]), extra={c: r.get(c, "") for c in EXTRA_COLUMNS})
               for r in rows]
    return Manifest(records, name=name)


def build_cxr3(rows: list[dict], seed: int = DEFAULT_SEED) -> Manifest:
    curated = [r for r in rows if r["curated"] == "1"]
    by_patient = grouped_stratified_split(curated, CXR3_FRACTIONS, seed)
    return _manifest(curated, {r["image_id"]: by_patient[patient_of(r)] for r in curated}, "cxr3")


def build_makris(rows: list[dict], seed: int = DEFAULT_SEED) -> tuple[Manifest, Leakage]:
    makris = [r for r in rows if r["makris2020_split"]]
    train = [r for r in makris if r["makris2020_split"] == "train"]
    by_patient = grouped_stratified_split(
        train, {"train": 1 - MAKRIS_VAL_FRACTION, "val": MAKRIS_VAL_FRACTION}, seed)
    splits = {r["image_id"]: by_patient[patient_of(r)] if r["makris2020_split"] == "train" else "test"
              for r in makris}
    return _manifest(makris, splits, "makris2020"), find_leakage(makris)


def find_leakage(rows: list[dict]) -> Leakage:
    """Patients with images in both the published train and test splits."""
    split_of = defaultdict(set)
    for r in rows:
        split_of[patient_of(r)].add(r["makris2020_split"])
    crossing = sorted(p for p, s in split_of.items() if {"train", "test"} <= s)
    images = sum(1 for r in rows if patient_of(r) in set(crossing))
    return Leakage(crossing, images)


def write_manifests(metadata_csv: Path, out_dir: Path, seed: int = DEFAULT_SEED) -> tuple[dict[str, Manifest], Leakage]:
    """Build and write ``cxr3.csv`` and ``makris2020.csv``; return them and the Makris leakage."""
    rows = read_metadata(metadata_csv)
    cxr3 = build_cxr3(rows, seed)
    makris, leakage = build_makris(rows, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for manifest in (cxr3, makris):
        manifest.write(out_dir / f"{manifest.name}.csv", extra_columns=EXTRA_COLUMNS)
    return {"cxr3": cxr3, "makris2020": makris}, leakage
