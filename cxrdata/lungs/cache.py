"""Lung masks for the images of a manifest, predicted once and cached.

A mask is cached as a PNG under
``$CXR_CACHE/lungs/v<format>-<segmenter sha256>/<image sha256>-f<fold>.png``: keyed by the image's
bytes, the segmenter's file, the fold model that segmented it and how masks are made from its
output (:data:`FORMAT`), so a new segmenter, a changed image or a new post-processing never reuses
an old mask. The image itself is checked against its
manifest checksum before it is segmented.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from runkit.rundir import write_bytes

from ..cache import cache_dir
from ..images import fit_square, read_grayscale
from ..manifest import Manifest, Record, check_checksum, sha256_of
from .regions import apply_region, as_uint8, check_region
from .segmenter import Segmenter, default_segmenter

BATCH = 16


FORMAT = 2  # 2: pieces under 1 % of the image removed


def mask_cache_dir(segmenter: Segmenter) -> Path:
    return cache_dir() / "lungs" / f"v{FORMAT}-{segmenter.checksum[:16]}"


def _identity(record: Record) -> str:
    """The image's sha256: the manifest's, or the file's own where a manifest gives none."""
    return record.sha256 or sha256_of(record.file)


def _cached_path(segmenter: Segmenter, identity: str, patient_id: str | None) -> Path:
    return mask_cache_dir(segmenter) / f"{identity}-f{segmenter.fold_for(patient_id, identity)}.png"


def _read_png(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) >= 128
    except (OSError, ValueError):
        return None  # missing or damaged: predicted again


def save_mask(path: Path, mask: np.ndarray) -> None:
    """A boolean mask as an 8-bit PNG (0 / 255), atomically."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, "PNG", optimize=True)
    write_bytes(path, buffer.getvalue())


def lung_masks(manifest: Manifest, segmenter: Segmenter, progress: bool = True) -> list[np.ndarray]:
    """Boolean lung masks of every image of ``manifest`` at the image's own size (cross-fitted)."""
    return cached_masks([(_identity(r), r.patient_id) for r in manifest], lambda i: decode_native(manifest[i]),
                        segmenter, progress, manifest.name)


def cached_masks(images: list[tuple[str, str | None]], decode: Callable[[int], np.ndarray], segmenter: Segmenter,
                 progress: bool = True, name: str = "images") -> list[np.ndarray]:
    """Boolean lung masks of images known by ``(sha256, patient id or None)``, from the cache, or
    predicted in batches by their fold models (``decode(i)``: image ``i`` at its own size) and cached."""
    masks: list[np.ndarray | None] = []
    for identity, patient in images:
        cached = _cached_path(segmenter, identity, patient)
        masks.append(_read_png(cached) if cached.is_file() else None)
    by_fold: dict[int, list[int]] = {}
    for i, mask in enumerate(masks):
        if mask is None:
            by_fold.setdefault(segmenter.fold_for(images[i][1], images[i][0]), []).append(i)
    missing = sum(map(len, by_fold.values()))
    with tqdm(total=missing, desc=f"segmenting lungs of {name}", unit="img",
              disable=not progress or not missing) as bar:
        for fold, indices in by_fold.items():
            for start in range(0, len(indices), BATCH):
                chosen = indices[start:start + BATCH]
                for i, mask in zip(chosen, segmenter.masks([decode(i) for i in chosen], fold)):
                    save_mask(_cached_path(segmenter, *images[i]), mask)
                    masks[i] = mask
                bar.update(len(chosen))
    return masks  # type: ignore[return-value]


def fitted_masks(manifest: Manifest, size: int, segmenter: Segmenter, progress: bool = True) -> np.ndarray:
    """``(N, size, size)`` bool masks cropped and resized exactly as :func:`cxrdata.cache.decode`
    fits each image, so mask and image stay aligned."""
    masks = lung_masks(manifest, segmenter, progress)
    return np.stack([fit_square(m.astype(np.uint8) * 255, size) >= 128 for m in masks]) if masks \
        else np.zeros((0, size, size), dtype=bool)


def with_region(manifest: Manifest, images: np.ndarray, region: str, segmenter: Segmenter | None = None,
                progress: bool = True) -> np.ndarray:
    """``(N, size, size)`` uint8 ``images`` of ``manifest`` as a model of ``region`` sees them
    (:func:`cxrdata.lungs.regions.apply_region`, with each image's cross-fitted lung mask)."""
    return region_view(manifest, images, region, segmenter, progress)[0]


def region_view(manifest: Manifest, images: np.ndarray, region: str, segmenter: Segmenter | None = None,
                progress: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`with_region`'s images and the ``(N, size, size)`` bool masks it fitted to them (None
    for ``full`` or no images)."""
    if check_region(region) == "full" or not len(images):
        return images, None
    masks = fitted_masks(manifest, images.shape[-1], segmenter or default_segmenter(), progress)
    return shown(images, masks, region), masks


def shown(images: np.ndarray, masks: np.ndarray, region: str) -> np.ndarray:
    """``(N, S, S)`` uint8 ``images`` with their ``(N, S, S)`` bool ``masks`` applied as ``region``."""
    shown = apply_region(torch.from_numpy(images).float().div(255).unsqueeze(1),
                         torch.from_numpy(masks).float().unsqueeze(1), region)
    return as_uint8(shown.squeeze(1))


def seen_masks(manifest: Manifest, size: int, region: str, segmenter: Segmenter | None = None,
               progress: bool = True, fitted: np.ndarray | None = None) -> np.ndarray:
    """``(N, size, size)`` bool lung masks in the frame a model of ``region`` sees (cropped as the
    images are for ``lungs-only``; in place otherwise), from ``fitted`` (:func:`fitted_masks`) when given."""
    masks = fitted if fitted is not None else fitted_masks(manifest, size, segmenter or default_segmenter(), progress)
    if region != "lungs-only" or not len(masks):
        return masks
    return shown(masks.astype(np.uint8) * 255, masks, region) >= 128


def image_and_mask(record: Record, segmenter: Segmenter) -> tuple[np.ndarray, np.ndarray]:
    """One image (checked) and its lung mask, both at the image's size."""
    mask = lung_masks(Manifest([record], name=Path(record.path).name), segmenter, progress=False)[0]
    return decode_native(record), mask


def decode_native(record: Record) -> np.ndarray:
    check_checksum(record)
    return read_grayscale(record.file)
