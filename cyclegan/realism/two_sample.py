"""Realism a reader can trust: a classifier two-sample test, and the distribution measures in an
ImageNet feature space.

Classifier two-sample test (Lopez-Paz & Oquab 2017). A classifier is told to separate real images
from synthetic ones: frozen EfficientNet-Lite0 ImageNet features, standardised, and a logistic
regression with scikit-learn's defaults, cross-validated with patients kept within one fold (a
synthetic image belongs to its parent's patient). The two sets are first cut to the same size, so
50 % means indistinguishable and 100 % that every synthetic image is caught; the interval is
Wilson's over the images judged, each judged once by a model that never saw its patient.

The Fréchet distance and precision / recall need more images per set than feature dimensions, so
in the Lite0 space they are computed on the first :data:`COMPONENTS` principal components of the
real target images' features (the same projection for every set, the floor included).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from runkit.intervals import wilson_interval
from runkit.pretrained import LITE0_MEAN, LITE0_STD, lite0_imagenet

from .measures import distribution_realism

INPUT_SIZES = (128, 224)  # images are fed at their own side within these bounds (224: Lite0's ImageNet size)
COMPONENTS = 32
FOLDS = 5
BATCH = 32


def input_size(side: int) -> int:
    """The side Lite0 sees images of side ``side`` at: their own, within :data:`INPUT_SIZES` (small
    images gain nothing from 224 px but cost 3.5× the time)."""
    low, high = INPUT_SIZES
    return min(high, max(low, side))


@torch.no_grad()
def imagenet_features(images: np.ndarray, net: torch.nn.Module | None = None) -> np.ndarray:
    """The 1280-d Lite0 ImageNet features (float64) of uint8 ``(N, S, S)`` images (grey copied to
    RGB, resized to :func:`input_size`)."""
    net = net or lite0_imagenet()
    size = input_size(images.shape[-1])
    out = []
    for start in range(0, len(images), BATCH):
        x = torch.as_tensor(images[start:start + BATCH]).unsqueeze(1).float().div(255)
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(net(((x - LITE0_MEAN) / LITE0_STD).expand(-1, 3, -1, -1)).double())
    return torch.cat(out).numpy() if out else np.zeros((0, 1280))


def two_sample_test(real: np.ndarray, synthetic: np.ndarray, real_groups: list[str], synthetic_groups: list[str],
                    seed: int = 0) -> dict:
    """How often a classifier tells ``synthetic`` feature rows from ``real`` ones on images of
    patients it never trained on: accuracy with its Wilson 95 % interval (0.5 = indistinguishable)."""
    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic))
    if n < FOLDS:
        return {"skipped": f"the two-sample test needs at least {FOLDS} images per set; it has {n}"}
    keep_real, keep_synthetic = (np.sort(rng.choice(len(x), n, replace=False)) for x in (real, synthetic))
    x = np.concatenate([real[keep_real], synthetic[keep_synthetic]])
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    groups = np.r_[np.asarray(real_groups, dtype=object)[keep_real],
                   np.asarray(synthetic_groups, dtype=object)[keep_synthetic]]
    folds = StratifiedGroupKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    correct = int((cross_val_predict(model, x, y, groups=groups, cv=folds) == y).sum())
    low, high = wilson_interval(correct, 2 * n)
    return {"accuracy": correct / (2 * n), "low": low, "high": high, "images_per_set": n, "folds": FOLDS}


def imagenet_realism(synthetic: np.ndarray, target: np.ndarray, parents: np.ndarray) -> dict:
    """Fréchet distance and precision / recall of Lite0 feature rows on the target's principal
    components (with the floor and the parents' baseline, as in the CXR feature space)."""
    components = min(COMPONENTS, len(target) - 1)
    pca = PCA(components, random_state=0).fit(target)
    projected = {name: pca.transform(rows) for name, rows in
                 (("synthetic", synthetic), ("target", target), ("parents", parents))}
    return {"feature_network": "EfficientNet-Lite0 (ImageNet), 1280-d pooled, first "
                               f"{components} principal components of the real target images",
            **distribution_realism(projected["synthetic"], projected["target"], projected["parents"])}
