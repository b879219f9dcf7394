"""Measures on binary lung masks: overlap (Dice), boundary distance (HD95), shape (area, pieces),
plausibility, and dilation by a margin. Masks are 2-D boolean (or 0/255) arrays."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# V7's human-drawn lungs cover 9-62 % of this corpus's images (median 33 %); far outside that, or in
# more than a few pieces, the image is not a frontal chest X-ray that the segmenter can read.
PLAUSIBLE_FRACTION = (0.05, 0.75)
MAX_PIECES = 4  # two lungs, and a little spare for a lung split by a drain or a marker
MIN_PIECE_SHARE = 0.01  # pieces smaller than this share of the image are specks, not counted


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|); 1.0 when both are empty."""
    a, b = predicted.astype(bool), truth.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(predicted: np.ndarray, truth: np.ndarray) -> float:
    """The 95th-percentile Hausdorff distance in pixels: the larger of the two directed 95th
    percentiles of boundary-to-boundary distances (as MONAI computes it). 0 when both masks are
    empty, infinite when only one is."""
    a, b = predicted.astype(bool), truth.astype(bool)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float("inf")
    surface_a, surface_b = _surface(a), _surface(b)
    to_b = ndimage.distance_transform_edt(~surface_b)[surface_a]
    to_a = ndimage.distance_transform_edt(~surface_a)[surface_b]
    return float(max(np.percentile(to_b, 95), np.percentile(to_a, 95)))


@dataclass(frozen=True)
class Shape:
    """What a mask looks like: its share of the image and its number of pieces."""

    fraction: float
    pieces: int

    @property
    def problem(self) -> str | None:
        """Why these lungs are implausible, or None."""
        low, high = PLAUSIBLE_FRACTION
        if self.pieces == 0 or self.fraction == 0:
            return "no lungs found"
        if self.fraction < low:
            return f"lungs too small ({self.fraction:.0%} of the image)"
        if self.fraction > high:
            return f"lungs too large ({self.fraction:.0%} of the image)"
        if self.pieces > MAX_PIECES:
            return f"lungs in {self.pieces} pieces"
        return None


def shape_of(mask: np.ndarray) -> Shape:
    """The mask's :class:`Shape` (pieces under :data:`MIN_PIECE_SHARE` of the image ignored)."""
    mask = mask.astype(bool)
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())[1:] if count else np.zeros(0)
    pieces = int((sizes >= MIN_PIECE_SHARE * mask.size).sum())
    return Shape(float(mask.mean()), pieces)


def without_specks(mask: np.ndarray) -> np.ndarray:
    """``mask`` without the pieces smaller than :data:`MIN_PIECE_SHARE` of the image (stray
    detections on markers or bowel gas, which would otherwise stretch a crop to the lungs)."""
    labels, count = ndimage.label(mask.astype(bool))
    if count == 0:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= MIN_PIECE_SHARE * mask.size
    keep[0] = False
    return keep[labels]


def dilate(mask: np.ndarray, margin: float) -> np.ndarray:
    """``mask`` grown by ``margin`` × the image's shorter side (a disc, Euclidean), as bool."""
    mask = mask.astype(bool)
    radius = margin * min(mask.shape)
    if radius <= 0 or not mask.any():
        return mask
    return ndimage.distance_transform_edt(~mask) <= radius
