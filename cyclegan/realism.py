"""Realism measures a pixel can answer: the checkerboard a stride-2 upsampling imprints.

A transposed convolution of stride 2 overlaps its kernel unevenly, so a generator built from two
of them paints a pattern of period 2 and 4 px over the whole image (Odena et al. 2016). In an
image of side N (a multiple of 4) that pattern's energy sits in the spectral bins at multiples
of N/4 along each axis. The score of an image is the mean, over those bins, of the power there
divided by the median power of the bins around it (a 5 × 5 patch without its centre): about the
same for every real image of a kind, far above it for a checkerboarded one. Read it against real
images' own score (the floor), never as an absolute.
"""
from __future__ import annotations

import numpy as np

PATCH = 2  # neighbourhood half-width, in bins


def _power(images: np.ndarray) -> np.ndarray:
    """Per image, the power spectrum after removing the mean and applying a Hann window."""
    x = images.astype(np.float64)
    x -= x.mean(axis=(1, 2), keepdims=True)
    window = np.outer(np.hanning(x.shape[1]), np.hanning(x.shape[2]))
    return np.abs(np.fft.fft2(x * window)) ** 2


def checkerboard_scores(images: np.ndarray) -> np.ndarray:
    """The checkerboard score of each ``(N, S, S)`` image (``S`` a multiple of 4, at least 16)."""
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[1] % 4 or images.shape[1] < 16:
        raise ValueError(f"checkerboard score: needs square images whose side is a multiple of 4 and at least 16 px, "
                         f"got shape {images.shape}")
    power = _power(images)
    side = images.shape[1]
    bins = [(i * side // 4, j * side // 4) for i in range(4) for j in range(4) if (i, j) != (0, 0)]
    offsets = [(di, dj) for di in range(-PATCH, PATCH + 1) for dj in range(-PATCH, PATCH + 1) if (di, dj) != (0, 0)]
    ratios = []
    for i, j in bins:
        around = np.stack([power[:, (i + di) % side, (j + dj) % side] for di, dj in offsets], axis=1)
        ratios.append(power[:, i, j] / np.maximum(np.median(around, axis=1), 1e-12))
    return np.mean(ratios, axis=0)


def checkerboard(images: np.ndarray) -> dict:
    """Mean, median, min and max checkerboard score of ``images``."""
    scores = checkerboard_scores(images)
    return {"mean": float(scores.mean()), "median": float(np.median(scores)), "min": float(scores.min()),
            "max": float(scores.max())}
