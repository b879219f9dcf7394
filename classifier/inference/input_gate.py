"""Input quality gate: does an image look like a frontal chest X-ray the model can judge?

Five checks, in order: the image is large enough (:data:`MIN_SIDE`), it is not blank or nearly
uniform (:data:`BLANK_STD`), its shape is not far from the training images' (width / height
within their range widened by :data:`ASPECT_SLACK`: the score below sees a centre crop, which
hides a strip's shape), it looks like the chest X-rays of the training split, and the lung
segmenter finds plausible lungs in it. The fourth is an out-of-distribution score learnt from
real data: a probabilistic PCA model of 48 × 48 contrast-normalised thumbnails of the dataset's
training images; the score is the Mahalanobis distance under that model, and the threshold is
the :data:`QUANTILE` of the validation split's scores, so about 1 % of real held-out CXRs are
flagged by construction (measured by ``cxr classify gate-check``). The fifth wants lungs that
are there, neither a speck nor most of the image, and in few pieces
(:mod:`cxrdata.lungs.geometry`). The gate does not depend on the classifier's weights, so one
gate serves every run of a dataset; it is cached under the decode cache.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cxrdata import Manifest, manifest_path
from cxrdata.cache import cache_dir, cached_images
from cxrdata.images import fit_square, image_size
from cxrdata.lungs.inputs import lung_problem

# Thumbnail side and components: chosen on documents, screenshots and noise generated with seeds
# other than those the gate is measured on (never on the test split or the scikit-image samples).
THUMB = 48  # side of the thumbnails the model of chest X-rays sees
COMPONENTS = 32  # principal components of the probabilistic PCA
QUANTILE = 0.99  # of the validation scores: the threshold
MIN_SIDE = 100  # px; the corpus's smallest image is 156 px on its short side
BLANK_STD = 4.0  # grey levels; below this the image is (nearly) uniform
# The training images' width / height range is widened by this factor each way (cxr3's training
# split: 0.75-2.24; a 2000 × 100 strip is 20).
ASPECT_SLACK = 1.25
FORMAT_VERSION = 2


@dataclass
class Verdict:
    """The gate's answer: ``ok`` or the reasons the classification is unreliable."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    score: float | None = None
    threshold: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        return "looks like a frontal chest X-ray" if self.ok else "; ".join(self.reasons)


def thumbnails(images: np.ndarray) -> np.ndarray:
    """``(N, THUMB*THUMB)`` per-image standardised thumbnails of ``(N, THUMB, THUMB)`` uint8 images."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    flat -= flat.mean(1, keepdims=True)
    return flat / np.maximum(flat.std(1, keepdims=True), 1e-6)


class QualityGate:
    """``gate.check(gray)`` → :class:`Verdict`; fitted with :meth:`fit` on real training images."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, variances: np.ndarray, noise: float,
                 threshold: float, aspect_range: tuple[float, float]):
        self.mean, self.components, self.variances = mean, components, variances
        self.noise, self.threshold = float(noise), float(threshold)
        self.aspect_range = (float(aspect_range[0]), float(aspect_range[1]))

    @classmethod
    def fit(cls, train: np.ndarray, val: np.ndarray, aspect_range: tuple[float, float]) -> "QualityGate":
        """Fit on ``(N, THUMB, THUMB)`` uint8 training thumbnails; threshold from the validation
        ones; ``aspect_range``: the training images' smallest and largest width / height."""
        from sklearn.decomposition import PCA

        features = thumbnails(train)
        pca = PCA(n_components=min(COMPONENTS, len(features) - 1), random_state=0).fit(features)
        gate = cls(pca.mean_, pca.components_, pca.explained_variance_, pca.noise_variance_, threshold=np.inf,
                   aspect_range=aspect_range)
        gate.threshold = float(np.quantile(gate.scores(val), QUANTILE))
        return gate

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The out-of-distribution score of ``(N, THUMB, THUMB)`` uint8 thumbnails (higher: less
        like the training chest X-rays): the Mahalanobis distance under the probabilistic PCA
        model, per pixel."""
        centred = thumbnails(images) - self.mean
        projected = centred @ self.components.T  # within the principal subspace, and the rest:
        inside = (projected ** 2 / self.variances).sum(1)
        outside = ((centred ** 2).sum(1) - (projected ** 2).sum(1)) / self.noise
        return (inside + outside) / centred.shape[1]

    def check(self, gray: np.ndarray) -> Verdict:
        """Judge one full-size grayscale image (as :func:`cxrdata.read_grayscale` returns it)."""
        height, width = gray.shape
        if min(height, width) < MIN_SIDE:
            return Verdict(False, [f"too small ({width}×{height} px; a chest X-ray the model can judge "
                                   f"has at least {MIN_SIDE} px on its short side)"])
        if float(gray.std()) < BLANK_STD:
            return Verdict(False, ["blank / nearly uniform"])
        low, high = self.aspect_range
        if not low / ASPECT_SLACK <= width / height <= high * ASPECT_SLACK:
            return Verdict(False, [f"not shaped like a frontal chest X-ray ({width}×{height} px, width / height "
                                   f"{width / height:.2f}; the training images have {low:.2f} to {high:.2f})"])
        score = float(self.scores(fit_square(gray, THUMB)[None])[0])
        if score > self.threshold:
            return Verdict(False, ["not a chest X-ray like those the model was trained on (out-of-"
                                   f"distribution score {score:.2f} > threshold {self.threshold:.2f}): "
                                   "a photo, document, screenshot or lateral view, or a frontal CXR "
                                   "from a kind of source the model has not seen"], score, self.threshold)
        return Verdict(True, [], score, self.threshold)

    def save(self, path: Path) -> None:
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, mean=self.mean, components=self.components, variances=self.variances, noise=self.noise,
                 threshold=self.threshold, aspect_range=np.array(self.aspect_range))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "QualityGate":
        with np.load(path) as saved:
            return cls(saved["mean"], saved["components"], saved["variances"], float(saved["noise"]),
                       float(saved["threshold"]), tuple(saved["aspect_range"]))


def aspect_range(manifest: Manifest) -> tuple[float, float]:
    """The smallest and largest width / height among ``manifest``'s images (from their headers)."""
    ratios = [width / height for width, height in (image_size(r.file) for r in manifest)]
    return min(ratios), max(ratios)


def checker_for_run(config: dict):
    """``check(gray, lungs) -> Verdict`` for a run: its dataset's gate, then the lungs' check
    (``lungs``: the image's predicted mask). Where the run's training data is
    not on this machine the gate says so (every answer then counts as unchecked)."""
    try:
        gate, unavailable = gate_for(config["dataset"]).check, None
    except (ValueError, OSError) as exc:
        gate, unavailable = None, f"quality gate unavailable ({exc})"

    def check(gray: np.ndarray, lungs: np.ndarray) -> Verdict:
        verdict = gate(gray) if gate else Verdict(False, [unavailable])
        if verdict.ok or not gate:
            problem = lung_problem(lungs)
            if problem:
                verdict = Verdict(False, verdict.reasons + [problem], verdict.score, verdict.threshold)
        return verdict
    return check


def gate_for(dataset: str, progress: bool = False) -> QualityGate:
    """The gate of a dataset (a manifest name or CSV): fitted on its train split's real images,
    thresholded on its val split, cached by their files and checksums."""
    manifest = Manifest.read(manifest_path(dataset))
    train, val = manifest.select(split="train"), manifest.select(split="val")
    if len(train) < 2 or len(val) < 1:
        raise ValueError(f"{dataset}: the quality gate needs training and validation images "
                         f"({len(train)} train, {len(val)} val)")
    key = hashlib.sha256(f"gate-v{FORMAT_VERSION}:{THUMB}:{COMPONENTS}:{QUANTILE}:{train.fingerprint()}:"
                         f"{val.fingerprint()}".encode()).hexdigest()[:20]
    path = cache_dir() / f"gate-{key}.npz"
    if path.is_file():
        return QualityGate.load(path)
    gate = QualityGate.fit(cached_images(train, THUMB, progress), cached_images(val, THUMB, progress),
                           aspect_range(train))
    path.parent.mkdir(parents=True, exist_ok=True)
    gate.save(path)
    return gate
