"""What the model itself does to every image before its backbone, in training and at inference
alike (so a checkpoint carries it): the lungs-hidden control and histogram equalisation."""
from __future__ import annotations

import torch

HIDDEN_BOX = (0.15, 0.85)  # the centre box blacked out by ``hide_lungs``, as fractions of each side
LEVELS = 256  # grey levels of the histogram equalisation (the images are 8-bit)


def hide_centre(images: torch.Tensor) -> torch.Tensor:
    """A copy of ``(B, C, H, W)`` images with the central :data:`HIDDEN_BOX` square set to 0."""
    height, width = images.shape[-2:]
    low, high = HIDDEN_BOX
    hidden = images.clone()
    hidden[..., round(low * height):round(high * height), round(low * width):round(high * width)] = 0
    return hidden


def equalize_histogram(images: torch.Tensor) -> torch.Tensor:
    """Per-image histogram equalisation of a ``(B, C, H, W)`` batch in [0, 1], on its device.

    Each image is quantised to :data:`LEVELS` grey levels and mapped through its own cumulative
    histogram, so the darkest level present becomes 0 and the brightest 1 (as in OpenCV's
    ``equalizeHist``); a constant image stays as it is.
    """
    n = images.shape[0]
    flat = images.detach().clamp(0, 1).reshape(n, -1).float()
    levels = (flat * (LEVELS - 1)).round().long()
    counts = torch.zeros(n, LEVELS, device=images.device).scatter_add_(1, levels, torch.ones_like(flat))
    cdf = counts.cumsum(1)
    first = cdf.gather(1, (counts > 0).float().argmax(1, keepdim=True))  # cdf at the lowest level present
    total = cdf[:, -1:]
    mapped = ((cdf - first) / (total - first).clamp_min(1)).clamp(0, 1).gather(1, levels)
    return torch.where(total > first, mapped, flat).view_as(images).to(images.dtype)
