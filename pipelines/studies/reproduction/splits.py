"""The papers' image pools from the corpus, and each replicate's split manifests.

Per-image splits are the papers' own (a patient's images may fall on both sides); the audit's
grouped splits keep each patient on one side. Even per image, copies of the same bytes stay
together, so no test image is literally in training.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np

from cxrdata.manifest import CLASSES, Manifest, Record, data_root
from cxrdata.splits import EXTRA_COLUMNS, grouped_stratified_split

from pipelines.studies.reproduction.protocols import Protocol

PER_CLASS_LUIZ = 142  # the paediatric images per class; covid drawn to match
POOL_SEED = 2020
CV_SEED = 0  # the one train/test split of a paper that cross-validates its training part


class ReproductionDataError(ValueError):
    """The corpus lacks a paper's images; the message names them and how to get them."""


def corpus(root: Path | None = None) -> Manifest:
    """Every image of the corpus, with its metadata columns."""
    root = Path(root or data_root())
    if not (root / "metadata.csv").is_file():
        raise ReproductionDataError(f"no corpus at {root} (metadata.csv missing): run `make fetch` or set CXR_DATA")
    return Manifest.read(root / "metadata.csv", root=root, default_split="test")


def _pa(record: Record) -> bool:
    return record.extra.get("view", "") == "PA"


def _balanced(records: list[Record], per_class: int) -> list[Record]:
    rng = np.random.default_rng(POOL_SEED)
    out = []
    for label in CLASSES:
        here = [r for r in records if r.label == label]
        out += [here[i] for i in sorted(rng.permutation(len(here))[:per_class])]
    return out


POOLS = {  # name → (selection, what the paper used, how many images the corpus must hold)
    "makris-train": (lambda rs: [r for r in rs if r.extra.get("makris2020_split") == "train"],
                     "Makris et al.'s repository, train/ (112 per class)", 336),
    "makris-test": (lambda rs: [r for r in rs if r.extra.get("makris2020_split") == "test"],
                    "Makris et al.'s repository, test/ (30 per class; the paper never mentions it)", 89),
    "zebin": (lambda rs: [r for r in rs if (r.source == "ieee8023" and r.label == "covid" and _pa(r))
                          or (r.source == "kaggle-paediatric" and r.label in ("normal", "pneumonia"))],
              "ieee8023 PA covid + paediatric normal and pneumonia", 460),
    "luiz": (lambda rs: _balanced([r for r in rs if (r.source in ("ieee8023", "figure1") and r.label == "covid"
                                                     and _pa(r)) or r.source == "kaggle-paediatric"], PER_CLASS_LUIZ),
             "ieee8023 + figure1 PA covid and paediatric normal and pneumonia, 142 per class", 3 * PER_CLASS_LUIZ),
}


def pool(name: str, root: Path | None = None) -> Manifest:
    """The images of pool ``name`` (split column unset), or a one-line error naming what is missing."""
    select, what, expected = POOLS[name]
    chosen = select(corpus(root).records)
    if len(chosen) < expected:
        raise ReproductionDataError(f"pool {name!r} ({what}) needs {expected} images of the corpus, found "
                                    f"{len(chosen)}: rebuild the corpus with `make fetch`")
    return Manifest(chosen, name=name)


def _units(records: list[Record]) -> list[list[int]]:
    """Indices grouped by identical bytes: the unit a per-image split moves."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[r.sha256 or r.path].append(i)
    return list(groups.values())


def image_parts(records: list[Record], shares: list[float], seed: int, stratified: bool) -> list[int]:
    """Per image, the index of the part it falls in; parts sized by ``shares`` (per class when
    ``stratified``), images drawn at random with ``seed``."""
    rng = np.random.default_rng(seed)
    part = [0] * len(records)
    strata = CLASSES if stratified else (None,)
    for label in strata:
        units = [u for u in _units(records) if label is None or records[u[0]].label == label]
        order = [units[i] for i in rng.permutation(len(units))]
        bounds = np.round(np.cumsum(shares) / sum(shares) * len(order)).astype(int)
        for k, unit in enumerate(order):
            for i in unit:
                part[i] = int(np.searchsorted(bounds, k, side="right"))
    return part


def _with_splits(manifest: Manifest, splits: list[str], name: str) -> Manifest:
    return Manifest([dataclasses.replace(r, split=s) for r, s in zip(manifest, splits)], name=name)


def holdout_split(protocol: Protocol, images: Manifest, replicate: int) -> Manifest:
    """The paper's random per-image train/test split behind replicate ``replicate``: with CV one split
    serves every fold (its training part is what v2's GAN may learn from); otherwise each replicate is
    a seed of it."""
    seed = CV_SEED if protocol.folds else replicate
    held = image_parts(images.records, [1 - protocol.test_share, protocol.test_share], seed, protocol.stratified)
    return _with_splits(images, ["test" if h else "train" for h in held], f"{protocol.paper}-seed{seed}")


def protocol_split(protocol: Protocol, images: Manifest, replicate: int) -> Manifest:
    """Replicate ``replicate`` of the paper's own split (per image)."""
    if protocol.split == "image-folds":  # fold k tests, the last fold validates, the rest train
        folds = image_parts(images.records, [1.0] * protocol.folds, POOL_SEED, protocol.stratified)
        last = protocol.folds - 1
        splits = ["test" if f == replicate else "val" if f == last else "train" for f in folds]
        return _with_splits(images, splits, f"{protocol.paper}-fold{replicate}")
    held = holdout_split(protocol, images, replicate)
    if not protocol.folds:
        return held
    splits = [r.split for r in held]  # CV of the training part: fold ``replicate`` validates
    train = [i for i, s in enumerate(splits) if s == "train"]
    folds = image_parts([images[i] for i in train], [1.0] * protocol.folds, CV_SEED + 1, protocol.stratified)
    for i, fold in zip(train, folds):
        splits[i] = "val" if fold == replicate else "train"
    return _with_splits(images, splits, f"{protocol.paper}-fold{replicate}")


def grouped_split(protocol: Protocol, images: Manifest, replicate: int) -> Manifest:
    """The audit's split: the same shares as the protocol's, whole patients on one side."""
    if protocol.split == "image-folds":
        shares = {"train": (protocol.folds - 2) / protocol.folds, "val": 1 / protocol.folds, "test": 1 / protocol.folds}
    elif protocol.folds:
        train = 1 - protocol.test_share
        shares = {"train": train * (1 - 1 / protocol.folds), "val": train / protocol.folds, "test": protocol.test_share}
    else:
        shares = {"train": 1 - protocol.test_share, "test": protocol.test_share}
    rows = [{"image_id": r.extra.get("image_id") or r.path, "patient_id": r.patient_id, "label": r.label,
             "sha256": r.sha256} for r in images]
    by_patient = grouped_stratified_split(rows, shares, POOL_SEED + replicate)
    splits = [by_patient[row["patient_id"] or row["image_id"]] for row in rows]
    return _with_splits(images, splits, f"{protocol.paper}-grouped{replicate}")


def write(manifest: Manifest, path: Path) -> str:
    """Write ``manifest`` (paths relative to the data root) and return its path as text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest.write(path, extra_columns=EXTRA_COLUMNS)
    return str(path)


def patients_on_both_sides(manifest: Manifest) -> int:
    """Patients with images in the training and the test split: the per-image split's leak."""
    train = {r.patient_id for r in manifest if r.split == "train" and r.patient_id}
    return len({r.patient_id for r in manifest if r.split == "test" and r.patient_id in train})
