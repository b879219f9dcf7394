"""The human-drawn lung masks (V7 Labs, CC BY 4.0) and their committed manifest.

``data_manifests/lung-masks.csv`` lists each mask with its corpus image: the image's ``path``,
``sha256``, ``patient_id``, ``source`` and ``label`` (as in every manifest), and the mask's file,
``mask_sha256`` (of its pixels, so a mask re-encoded with the same pixels still matches), the
image's ``width``/``height``, and the upstream file (``v7_mask_id``, ``v7_mask_sha256``,
``v7_url``) at V7's pinned commit. The mask files live in ``$CXR_LUNG_MASKS``, else
``../shared/data/lung-masks`` beside the repository, else ``data/lung-masks`` (where ``cxr data
fetch`` puts them). A mask is used only after its size (that of its image) and its checksum are
checked, so a wrong or resized file is refused by name.
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np

from ..images import image_size, read_grayscale
from ..manifest import REPO_ROOT, Manifest, Record, manifest_dir

MANIFEST_NAME = "lung-masks"
MASK_COLUMNS = ("image_id", "mask", "mask_sha256", "width", "height", "v7_mask_id", "v7_mask_sha256", "v7_url",
                "mask_license")
V7_COMMIT = "51fca0d0d089b2fa7b0b95f0aed32ebaebd561f2"
V7_LICENSE = "CC BY 4.0 (V7 Labs)"


class MaskError(ValueError):
    """A lung mask file cannot be used; the message names it."""


def masks_root() -> Path:
    """Where the mask files are: ``$CXR_LUNG_MASKS``, ``../shared/data/lung-masks`` or ``data/lung-masks``."""
    if os.environ.get("CXR_LUNG_MASKS"):
        return Path(os.environ["CXR_LUNG_MASKS"]).expanduser().resolve()
    shared = REPO_ROOT.parent / "shared" / "data" / "lung-masks"
    return shared if shared.is_dir() else REPO_ROOT / "data" / "lung-masks"


def mask_manifest_path() -> Path:
    return manifest_dir() / f"{MANIFEST_NAME}.csv"


def read_mask_manifest(path: Path | None = None) -> Manifest:
    """The committed mask manifest (images resolve against the data root)."""
    path = path or mask_manifest_path()
    if not path.is_file():
        raise MaskError(f"{path}: the lung-mask manifest is missing; `cxr lungs manifest` writes it from "
                        "the masks' lung-masks.csv")
    return Manifest.read(path)


def mask_file(record: Record) -> Path:
    return masks_root() / record.extra["mask"]


def read_mask(record: Record) -> np.ndarray:
    """The human mask of ``record`` as a boolean array at its image's size, after checking the file's
    sha256 and that its size is the image's."""
    path = mask_file(record)
    if not path.is_file():
        raise MaskError(f"{path}: lung mask not found (masks root {masks_root()}; `make fetch` gets the masks, "
                        "or set CXR_LUNG_MASKS)")
    check_same_size(path, record.file)
    mask = read_grayscale(path) >= 128
    found = pixels_sha256(mask)
    if found != record.extra["mask_sha256"]:
        raise MaskError(f"{path}: sha256 {found[:16]}… of its pixels is not the manifest's "
                        f"{record.extra['mask_sha256'][:16]}…; the mask file was changed or replaced")
    return mask


def pixels_sha256(mask: np.ndarray) -> str:
    """The checksum of a mask's pixels: sha256 of its height, width and 0/1 bytes, row by row."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    return hashlib.sha256(f"{mask.shape[0]}x{mask.shape[1]}:".encode() + mask.tobytes()).hexdigest()


def check_same_size(mask_path: Path, image_path: Path) -> None:
    """Refuse a mask whose width × height is not its image's."""
    mask_wh, image_wh = image_size(mask_path), image_size(image_path)
    if mask_wh != image_wh:
        raise MaskError(f"{mask_path}: mask is {mask_wh[0]}×{mask_wh[1]} but its image {image_path.name} is "
                        f"{image_wh[0]}×{image_wh[1]}; a mask must be drawn at its image's size")


def build_mask_manifest(masks_csv: Path, corpus: Manifest, out: Path) -> Manifest:
    """Write the mask manifest from the masks' ``lung-masks.csv`` and the corpus rows it names."""
    by_id = {r.extra.get("image_id"): r for r in corpus}
    records = []
    with open(masks_csv, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            image = by_id.get(row["image_id"])
            if image is None:
                raise MaskError(f"{masks_csv}:{line}: image {row['image_id']} is not in the corpus manifest")
            mask = masks_csv.parent / row["mask"]
            if not mask.is_file():
                raise MaskError(f"{masks_csv}:{line}: {mask} not found")
            check_same_size(mask, image.file)
            width, height = image_size(image.file)
            extra = {"image_id": row["image_id"], "mask": row["mask"],
                     "mask_sha256": pixels_sha256(read_grayscale(mask) >= 128), "width": str(width),
                     "height": str(height), "v7_mask_id": row["v7_mask_id"], "v7_mask_sha256": row["v7_mask_sha256"],
                     "v7_url": row["v7_url"], "mask_license": row.get("license") or V7_LICENSE}
            records.append(Record(path=image.path, label=image.label, split="train", patient_id=image.patient_id,
                                  source=image.source, sha256=image.sha256, file=image.file, extra=extra))
    manifest = Manifest(records, name=MANIFEST_NAME)
    manifest.write(out, extra_columns=MASK_COLUMNS)
    return manifest
