"""Classical augmentation (v1) on batches of 1-channel tensors, and the lungs-hidden control.

Augmentation is one random affine map per image (rotation, width/height shift, zoom, optional
horizontal flip), applied with ``grid_sample`` to a whole batch at once; regions moved in from
outside the image are black. Random numbers come from torch's global generator, so a seed (and
the RNG state saved in a checkpoint) makes a run repeatable.

Horizontal flips mirror anatomy (the heart appears on the right); they are on by default only
because the published v1 used them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentSettings:
    rotation: float = 10.0  # maximum rotation, degrees either way
    width_shift: float = 0.1  # maximum horizontal shift, fraction of the width
    height_shift: float = 0.1  # maximum vertical shift, fraction of the height
    zoom: float = 0.1  # scale drawn from [1 - zoom, 1 + zoom]
    hflip: float = 0.5  # probability of a horizontal flip (mirrors anatomy)

    def __post_init__(self):
        for name in ("rotation", "width_shift", "height_shift", "zoom", "hflip"):
            if getattr(self, name) < 0:
                raise ValueError(f"augmentation {name} must be >= 0, got {getattr(self, name)}")
        if self.zoom >= 1 or self.hflip > 1:
            raise ValueError("augmentation zoom must be < 1 and hflip a probability in [0, 1]")


def augment(images: torch.Tensor, settings: AugmentSettings) -> torch.Tensor:
    """A randomly transformed copy of a ``(B, C, H, W)`` batch."""
    n = images.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(n) * 2 - 1) * limit

    angle = uniform(math.radians(settings.rotation))
    scale = 1 + uniform(settings.zoom)
    shift_x, shift_y = uniform(2 * settings.width_shift), uniform(2 * settings.height_shift)
    flip = torch.where(torch.rand(n) < settings.hflip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # theta maps output coordinates to input coordinates in [-1, 1]
    theta = torch.stack([torch.stack([cos * flip, -sin, shift_x], 1),
                         torch.stack([sin * flip, cos, shift_y], 1)], 1).to(images)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
