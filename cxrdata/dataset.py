"""A torch dataset over a manifest: 1-channel float images in [0, 1] and class indices."""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import cached_images, decode_all
from .manifest import CLASSES, Manifest, manifest_path


class CXRDataset(Dataset):
    """Images of ``manifest`` at ``size`` px, decoded once (see :mod:`cxrdata.cache`), or the
    already decoded ``images`` ``(N, size, size)`` uint8 when given; shown as a model of ``region``
    sees them (:data:`cxrdata.lungs.regions.REGIONS`: the whole image, or with the lungs removed,
    only the lungs, or their outline, from each image's cross-fitted lung mask).

    ``dataset[i]`` is ``(image, label)`` with ``image`` a ``(1, size, size)`` float tensor in
    [0, 1] after the optional ``transform``, and ``label`` the index in :data:`CLASSES`.
    """

    def __init__(self, manifest: Manifest, size: int, transform: Callable | None = None,
                 progress: bool = True, use_cache: bool = True, images: np.ndarray | None = None,
                 region: str = "full"):
        self.manifest = manifest
        self.size = size
        self.transform = transform
        if images is not None and images.shape != (len(manifest), size, size):
            raise ValueError(f"images of shape {images.shape} do not fit {len(manifest)} images at {size} px")
        self.images: np.ndarray = (images if images is not None
                                   else cached_images(manifest, size, progress=progress, use_cache=use_cache))
        self.region = region
        from .lungs.cache import region_view

        # masks: (N, size, size) bool, the lungs its region used in the image frame (None for the whole image)
        self.images, self.masks = region_view(manifest, self.images, region, progress=progress)
        self.labels = torch.tensor(manifest.labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.manifest)

    def uint8(self, index: int) -> torch.Tensor:
        """The decoded image as a ``(1, size, size)`` uint8 tensor (no copy, no transform)."""
        return torch.from_numpy(self.images[index]).unsqueeze(0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.uint8(index).float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def class_counts(self) -> dict[str, int]:
        tally = Counter(self.labels.tolist())
        return {c: tally[i] for i, c in enumerate(CLASSES)}

    def __repr__(self) -> str:
        counts = " ".join(f"{c}={n}" for c, n in self.class_counts().items())
        return f"CXRDataset({self.manifest.name!r}, {len(self)} images @ {self.size}px; {counts})"


def read_rates(manifest: str, split: str, size: int, limit: int | None = None) -> list[tuple[str, float, int]]:
    """Time a cold decode of every image (or the first ``limit``) and a warm pass over the cache."""
    chosen = Manifest.read(manifest_path(manifest)).select(split=split)
    chosen = Manifest(chosen.records[:limit], name=chosen.name)
    start = time.perf_counter()
    decode_all(chosen, size, progress=False)
    cold = time.perf_counter() - start
    CXRDataset(chosen, size, progress=False)  # make sure the cache file exists
    start = time.perf_counter()
    warm_set = CXRDataset(chosen, size, progress=False)
    for i in range(len(warm_set)):
        warm_set[i]
    warm = time.perf_counter() - start
    return [("cold", cold, len(chosen)), ("warm", warm, len(chosen))]
