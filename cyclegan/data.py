"""The two unpaired domains: real training images of one label, as augmented crops in [-1, 1]."""
from __future__ import annotations

import torch

from cxrdata import CXRDataset, Manifest, manifest_path

DOMAIN_LABELS = {"A": "normal", "B": "covid"}


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → [-1, 1] in torch's default float dtype (float32 unless a caller, such as
    the float64 equality tests, chose another)."""
    return images.to(torch.get_default_dtype()).div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255], rounded."""
    return images.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


class Domain:
    """The **train-split** images of ``label`` in ``manifest``, decoded once at ``load_size``.

    :meth:`batch` draws random images with random ``crop_size`` crops (and horizontal flips if
    ``flip``); :meth:`fixed` gives the same centre crops every time.
    """

    def __init__(self, manifest: Manifest, label: str, load_size: int, crop_size: int,
                 flip: bool = True, progress: bool = True):
        self.manifest = manifest.select(split="train", label=label)
        if not len(self.manifest):
            raise ValueError(f"manifest {manifest.name}: no training images labelled {label!r}; "
                             "the CycleGAN needs both normal and covid training images")
        self.label = label
        self.crop_size = crop_size
        self.flip = flip
        self.dataset = CXRDataset(self.manifest, load_size, progress=progress)

    def __len__(self) -> int:
        return len(self.manifest)

    def batch(self, size: int, generator: torch.Generator | None = None, part: tuple[int, int] = (0, 1)) -> torch.Tensor:
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


def load_domains(manifest_name: str, load_size: int, crop_size: int, flip: bool = True,
                 progress: bool = True) -> tuple[Domain, Domain]:
    """Domain A (normal) and B (covid) of the named manifest's training split."""
    manifest = Manifest.read(manifest_path(manifest_name))
    return tuple(Domain(manifest, DOMAIN_LABELS[d], load_size, crop_size, flip, progress) for d in "AB")
