"""Realism measures: the checkerboard a stride-2 upsampling imprints (pixels), and the Fréchet
distance and k-NN precision / recall (Kynkäänniemi et al. 2019) on features of a fixed network.

Checkerboard.
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


# --- distribution measures on features -------------------------------------------------------
K_NEAREST = 3  # Kynkäänniemi et al.'s k
MIN_PR_IMAGES = 10


class TooFewImages(ValueError):
    """A measure was asked for on fewer images than it needs; the message says how many."""


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b`` (float64):
    |μa − μb|² + tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½). Each set needs more rows than dimensions, so
    that its covariance can be full rank."""
    dim = a.shape[1]
    for name, x in (("first", a), ("second", b)):
        if len(x) <= dim:
            raise TooFewImages(f"Fréchet distance on {dim}-d features needs at least {dim + 1} images per set; "
                               f"the {name} set has {len(x)}")
    a, b = a.astype(np.float64), b.astype(np.float64)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrt_psd(cov_a)
    cross = np.trace(_sqrt_psd(root_a @ cov_b @ root_a))
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b`` (float64)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(squared, 0, None))


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    distances = _distances(x, x)
    np.fill_diagonal(distances, 0.0)
    return np.sort(distances, axis=1)[:, k]  # column 0 is the point itself


def _coverage(queries: np.ndarray, points: np.ndarray, radii: np.ndarray) -> float:
    return float((_distances(queries, points) <= radii[None, :]).any(axis=1).mean())


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = K_NEAREST) -> dict[str, float]:
    """Kynkäänniemi et al.'s improved precision (share of generated points inside the real
    manifold: the union of balls around each real point reaching its k-th nearest real neighbour)
    and recall (share of real points inside the generated manifold)."""
    for name, x in (("real", real), ("generated", generated)):
        if len(x) < max(MIN_PR_IMAGES, k + 1):
            raise TooFewImages(f"precision/recall needs at least {max(MIN_PR_IMAGES, k + 1)} images per set; "
                               f"the {name} set has {len(x)}")
    return {"precision": _coverage(generated, real, _kth_radius(real, k)),
            "recall": _coverage(real, generated, _kth_radius(generated, k)), "k": k}


def halves(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of ``range(count)``."""
    order = np.random.default_rng(seed).permutation(count)
    return order[: count // 2], order[count // 2:]


def distribution_realism(synthetic: np.ndarray, target: np.ndarray, baseline: np.ndarray | None = None,
                         seed: int = 0) -> dict:
    """Fréchet distance and precision / recall of ``synthetic`` feature rows against ``target``'s,
    with the real floor measured the same way.

    The target set is split into two random halves; the reference is the second half. The floor
    compares the first half with it; the synthetic images (and the ``baseline``, their untranslated
    parents) are compared with it at the same number of rows ``m`` (the first ``m`` of each), so
    that the small-sample bias of every number is the same and the floor is a fair one.
    """
    first, reference = halves(len(target), seed)
    m = min(len(first), len(synthetic))
    sets = {"synthetic": synthetic[:m], "real target, other half (floor)": target[first[:m]]}
    if baseline is not None:
        sets["parents (baseline)"] = baseline[:m]
    out = {"images_per_set": m, "reference_images": len(reference)}
    for measure, compute in (("frechet_distance", frechet_distance), ("precision_recall", precision_recall)):
        try:
            out[measure] = {name: compute(target[reference], rows) for name, rows in sets.items()}  # (real, other)
        except TooFewImages as exc:
            out[measure] = {"skipped": f"{exc} (synthetic {len(synthetic)}, real target {len(target)} split "
                                       "in halves)"}
    return out
