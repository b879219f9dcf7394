"""The two unpaired domains (filters over the training split: :mod:`.domains`), as augmented
crops in [-1, 1]."""
from __future__ import annotations

import torch

from cxrdata import CXRDataset, Manifest, manifest_path

from .domains import select_domains


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → [-1, 1] in torch's default float dtype (float32 unless a caller, such as
    the float64 equality tests, chose another)."""
    return images.to(torch.get_default_dtype()).div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255], rounded."""
    return images.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


class Domain:
    """The training images of one domain (``manifest``, already selected), decoded once at ``load_size``.

    :meth:`batch` draws random images with random ``crop_size`` crops (and horizontal flips if
    ``flip``); :meth:`fixed` gives the same centre crops every time.
    """

    def __init__(self, manifest: Manifest, load_size: int, crop_size: int, flip: bool = True,
                 progress: bool = True):
        self.manifest = manifest
        self.crop_size = crop_size
        self.flip = flip
        self.dataset = CXRDataset(self.manifest, load_size, progress=progress)

    def __len__(self) -> int:
        return len(self.manifest)

    def batch(self, size: int, generator: torch.Generator | None = None,
              part: tuple[int, int] = (0, 1)) -> torch.Tensor:
        """``(size, 1, crop, crop)`` randomly chosen, cropped and flipped images (with replacement),
        drawn from ``generator`` (default: the global torch RNG).

        ``part=(rank, ranks)``: the draw is made for all ``size`` images on every rank, and only the
        rank-th of ``ranks`` equal slices is cut out and returned. So N ranks with the same
        generator state see, between them, exactly the images one process drawing ``size`` would.
        """
        rank, ranks = part
        margin = self.dataset.size - self.crop_size
        indices = torch.randint(len(self), (size,), generator=generator)
        corners = torch.randint(margin + 1, (size, 2), generator=generator)
        flips = torch.rand(size, generator=generator) < 0.5
        crops = []
        for i in range(rank * size // ranks, (rank + 1) * size // ranks):
            top, left = corners[i].tolist()
            crop = self.dataset.uint8(int(indices[i]))[:, top:top + self.crop_size, left:left + self.crop_size]
            if self.flip and flips[i]:
                crop = crop.flip(-1)
            crops.append(crop)
        return to_unit_range(torch.stack(crops))

    def fixed(self, count: int) -> torch.Tensor:
        """Centre crops of ``count`` evenly spaced images (the same every call and every run)."""
        count = min(count, len(self))
        indices = torch.linspace(0, len(self) - 1, count).round().long().tolist()
        offset = (self.dataset.size - self.crop_size) // 2
        end = offset + self.crop_size
        return to_unit_range(torch.stack([self.dataset.uint8(i)[:, offset:end, offset:end] for i in indices]))


def load_domains(config, progress: bool = True) -> tuple[Domain, Domain]:
    """Domains A and B of ``config`` (a :class:`GANConfig`) over its manifest's training split,
    loaded at its load size for crops of its size."""
    manifest = Manifest.read(manifest_path(config.dataset))
    selected = select_domains(manifest, config.domain_a, config.domain_b, config.labels, config.batch_size)
    return tuple(Domain(images, config.effective_load_size, config.image_size, config.flip, progress)
                 for images in selected)
