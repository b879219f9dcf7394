"""What part of an image a model sees, given its lung mask: the whole image, the lungs removed,
the lungs only (cropped to them), or the outline (the mask alone).

The mask is first dilated by :data:`MARGIN` of the image side (a square structuring element), so
"lungs removed" also hides the lung edges and "lungs only" keeps them. One torch implementation
serves training, inference and export alike.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

REGIONS = ("full", "lungs-removed", "lungs-only", "outline")
MARGIN = 0.03  # dilation of the predicted lungs, as a fraction of the image side
REGION_NOTES = {  # one line each, for reports and model cards
    "full": "the whole image",
    "lungs-removed": "the lungs predicted by the lung segmenter, dilated by 3 % of the side, blacked out",
    "lungs-only": "everything outside the predicted lungs (dilated by 3 % of the side) blacked out, the image "
                  "cropped to the square around them; the lung segmenter runs on every input",
    "outline": "the predicted lung mask alone, no grey levels",
}
REGION_HELP = ("full: the whole image; lungs-removed: the lungs (dilated by 3 % of the side) blacked out; "
               "lungs-only: everything outside the dilated lungs blacked out and the image cropped to the "
               "square around them; outline: the lung mask alone, no grey levels")


def as_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [0, 1] as uint8 grey levels (numpy)."""
    return images.mul(255).round().clamp(0, 255).to(torch.uint8).numpy()


def check_region(region: str) -> str:
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}")
    return region


def dilated(masks: torch.Tensor, margin: float = MARGIN) -> torch.Tensor:
    """``(B, 1, H, W)`` masks in {0, 1} grown by ``margin`` × the shorter side (a square), as float."""
    radius = round(margin * min(masks.shape[-2:]))
    masks = (masks >= 0.5).float()
    return F.max_pool2d(masks, 2 * radius + 1, stride=1, padding=radius) if radius > 0 else masks


def lung_box(masks: torch.Tensor) -> torch.Tensor:
    """The affine maps (``(B, 2, 3)``, for ``affine_grid``) that crop each image to the square
    centred on its mask's bounding box; the identity for an empty mask."""
    n, _, height, width = masks.shape
    rows, cols = masks.amax(3)[:, 0] > 0, masks.amax(2)[:, 0] > 0  # (B, H), (B, W)

    def span(present: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = present.float().argmax(1)
        last = size - 1 - present.flip(1).float().argmax(1)
        return first.float(), last.float()

    top, bottom = span(rows, height)
    left, right = span(cols, width)
    side = torch.maximum(bottom - top + 1, right - left + 1)
    empty = ~rows.any(1)
    scale_x = torch.where(empty, 1.0, side / width)
    scale_y = torch.where(empty, 1.0, side / height)
    centre_x = torch.where(empty, 0.0, (left + right + 1) / width - 1)  # normalised, align_corners=False
    centre_y = torch.where(empty, 0.0, (top + bottom + 1) / height - 1)
    zero = torch.zeros(n)
    return torch.stack([torch.stack([scale_x, zero, centre_x], 1), torch.stack([zero, scale_y, centre_y], 1)], 1)


def sampling_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, 1, height, width), align_corners=False)``, computed the way PyTorch
    computes it (the same base grid, one batched matrix product), so the result is the same to the
    bit, but from plain operators: the ONNX export then needs no AffineGrid (ONNX opset 20)."""
    def steps(n: int) -> torch.Tensor:
        return torch.linspace(-1, 1, n, dtype=theta.dtype, device=theta.device) * (n - 1) / n

    x = steps(width).view(1, width).expand(height, width)
    y = steps(height).view(height, 1).expand(height, width)
    base = torch.stack([x, y, torch.ones_like(x)], dim=-1).reshape(1, height * width, 3)
    return base.expand(theta.shape[0], -1, -1).bmm(theta.transpose(1, 2)).view(-1, height, width, 2)


def apply_region(images: torch.Tensor, masks: torch.Tensor, region: str, margin: float = MARGIN) -> torch.Tensor:
    """``(B, 1, H, W)`` images in [0, 1] as the model of ``region`` sees them, given their lung masks."""
    check_region(region)
    if region == "full":
        return images
    if region == "outline":
        return (masks >= 0.5).to(images.dtype)
    if region == "lungs-removed":
        return images * (1 - dilated(masks, margin).to(images.dtype))
    return lungs_view(images, masks, margin)[0]


def lungs_view(images: torch.Tensor, masks: torch.Tensor, margin: float = MARGIN) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 1, H, W)`` images in [0, 1] cropped to the square around their dilated lungs, black
    outside them (the ``lungs-only`` region), and what of the view is lung (the dilated mask in
    that frame, 0 / 1)."""
    grown = dilated(masks, margin).to(images.dtype)
    grid = sampling_grid(lung_box(grown).to(images), *images.shape[-2:])
    kept = F.grid_sample(grown, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    view = F.grid_sample(images * grown, grid, mode="bilinear", padding_mode="zeros", align_corners=False) * kept
    return view, kept


def from_lungs_view(views: torch.Tensor, masks: torch.Tensor, margin: float = MARGIN) -> torch.Tensor:
    """Views made by :func:`lungs_view` from these ``masks`` put back in the images' own frame
    (the inverse of the crop; outside the lungs' square, 0)."""
    theta = lung_box(dilated(masks, margin)).to(views)
    scale, centre = theta[:, :, :2], theta[:, :, 2:]
    inverse = torch.cat([torch.linalg.inv(scale), -torch.linalg.inv(scale) @ centre], dim=2)
    grid = sampling_grid(inverse, *views.shape[-2:])
    return F.grid_sample(views, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def feathered(masks: torch.Tensor, margin: float = MARGIN) -> torch.Tensor:
    """Blending weights for lungs pasted back into their image: 0 outside the dilated lungs exactly,
    rising over the dilation margin to 1 at the lungs' own edge and inside."""
    grown = dilated(masks, margin)
    radius = round(margin * min(masks.shape[-2:]))
    if radius == 0:
        return grown
    share = F.avg_pool2d(grown, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    return (2 * share - 1).clamp(0, 1) * grown
