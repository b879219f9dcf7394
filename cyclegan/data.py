"""The two unpaired domains (filters over the training split: :mod:`.domains`), as augmented
crops in [-1, 1]; in the ``lungs`` region, each image's lung view and the mask of what is lung."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from cxrdata import CXRDataset, Manifest, manifest_path
from cxrdata.lungs import default_segmenter, lung_problem, lungs_view
from cxrdata.lungs.cache import fitted_masks
from cxrdata.lungs.regions import as_uint8

from .domains import select_domains


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → [-1, 1] in torch's default float dtype (float32 unless a caller, such as
    the float64 equality tests, chose another)."""
    return images.to(torch.get_default_dtype()).div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255], rounded."""
    return images.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


class Crops(NamedTuple):
    """Images in [-1, 1] and, in the ``lungs`` region, the masks (0 / 1) of what in them is lung."""

    images: torch.Tensor
    masks: torch.Tensor | None = None


def confine(images: torch.Tensor | None, masks: torch.Tensor | None) -> torch.Tensor | None:
    """``images`` in [-1, 1] black (-1) wherever ``masks`` is 0; unchanged without masks."""
    return images if masks is None or images is None else (images + 1) * masks - 1


class Domain:
    """The training images of one domain (``manifest``, already selected), decoded once at ``load_size``.

    :meth:`batch` draws random images with random ``crop_size`` crops (and horizontal flips if
    ``flip``); :meth:`fixed` gives the same centre crops every time. With ``region="lungs"`` each
    image is first replaced by its lung view (:func:`cxrdata.lungs.lungs_view`: cropped to the square
    around its cross-fitted, dilated lung mask, black outside it) and every crop comes with its mask;
    images whose predicted lungs are implausible are left out, and said so in one line.
    """

    def __init__(self, manifest: Manifest, load_size: int, crop_size: int, flip: bool = True,
                 progress: bool = True, region: str = "full", log=print):
        self.crop_size = crop_size
        self.flip = flip
        self.masks: np.ndarray | None = None
        if region == "lungs":
            masks = fitted_masks(manifest, load_size, default_segmenter(), progress)
            problems = [lung_problem(m) for m in masks]
            dropped = [f"{r.path} ({p})" for r, p in zip(manifest, problems) if p]
            if dropped:
                log(f"{manifest.name}: {len(dropped)} image(s) left out, no plausible lungs: {'; '.join(dropped[:3])}"
                    + (" …" if len(dropped) > 3 else ""))
                keep = [i for i, p in enumerate(problems) if not p]
                manifest = Manifest([manifest[i] for i in keep], name=manifest.name)
                masks = masks[keep]
        self.manifest = manifest
        self.dataset = CXRDataset(self.manifest, load_size, progress=progress)
        if region == "lungs":
            view, kept = lungs_view(torch.from_numpy(self.dataset.images).float().div(255).unsqueeze(1),
                                    torch.from_numpy(masks).float().unsqueeze(1))
            self.dataset.images = as_uint8(view.squeeze(1))
            self.masks = kept.squeeze(1).to(torch.uint8).numpy()

    def __len__(self) -> int:
        return len(self.manifest)

    def batch(self, size: int, generator: torch.Generator | None = None,
              part: tuple[int, int] = (0, 1)) -> Crops:
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
        chosen = range(rank * size // ranks, (rank + 1) * size // ranks)
        crops = [self._crop(int(indices[i]), *corners[i].tolist(), bool(self.flip and flips[i])) for i in chosen]
        return self._stack(crops)

    def fixed(self, count: int) -> Crops:
        """Centre crops of ``count`` evenly spaced images (the same every call and every run)."""
        count = min(count, len(self))
        indices = torch.linspace(0, len(self) - 1, count).round().long().tolist()
        offset = (self.dataset.size - self.crop_size) // 2
        return self._stack([self._crop(i, offset, offset, False) for i in indices])

    def _crop(self, index: int, top: int, left: int, flip: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        window = (slice(None), slice(top, top + self.crop_size), slice(left, left + self.crop_size))
        image = self.dataset.uint8(index)[window]
        mask = None if self.masks is None else torch.from_numpy(self.masks[index]).unsqueeze(0)[window]
        if flip:
            image, mask = image.flip(-1), None if mask is None else mask.flip(-1)
        return image, mask

    def _stack(self, crops: list[tuple[torch.Tensor, torch.Tensor | None]]) -> Crops:
        images = to_unit_range(torch.stack([image for image, _ in crops]))
        if self.masks is None:
            return Crops(images)
        return Crops(images, torch.stack([mask for _, mask in crops]).to(images.dtype))


def load_domains(config, progress: bool = True) -> tuple[Domain, Domain]:
    """Domains A and B of ``config`` (a :class:`GANConfig`) over its manifest's training split,
    loaded at its load size for crops of its size."""
    manifest = Manifest.read(manifest_path(config.dataset))
    selected = select_domains(manifest, config.domain_a, config.domain_b, config.labels, config.batch_size)
    return tuple(Domain(images, config.effective_load_size, config.image_size, config.flip, progress, config.region)
                 for images in selected)
