"""Grad-CAM (Selvaraju et al. 2017) and a shortcut indicator built on it.

The gradient is captured by a tensor hook that a forward hook registers on the target layer's
output, so it works with in-place activations, with a frozen backbone (the output is made to
require grad) and under ``torch.no_grad()`` (grad is enabled inside). The model runs in eval mode
for the CAM and gets its previous mode back afterwards. Maps are min-max normalised per image,
so compare *fractions* of CAM mass across images, never absolute values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BORDER_BAND = 0.15  # width of the border band, as a fraction of each side


class GradCAM:
    """``with GradCAM(model, layer) as cam: maps, logits = cam(images, classes)``."""

    def __init__(self, model: nn.Module, target_layer: nn.Module | None = None):
        self.model = model
        layer = target_layer if target_layer is not None else model.cam_layer
        self._handle = layer.register_forward_hook(self._capture)
        self._activations: torch.Tensor | None = None
        self._gradients: torch.Tensor | None = None

    def _capture(self, module, inputs, output):
        if not output.requires_grad:  # frozen layers below: make the output a leaf that tracks grad
            output = output.detach().requires_grad_(True)
        self._activations = output
        output.register_hook(self._store_gradient)
        return output.clone()  # in-place ops after the layer (DenseNet's ReLU) must not touch it

    def _store_gradient(self, grad: torch.Tensor) -> None:
        self._gradients = grad

    def __call__(self, images: torch.Tensor, classes: torch.Tensor | list[int] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """CAMs ``(B, H, W)`` in [0, 1] at the input size for ``classes`` (default: predicted),
        and the logits ``(B, K)``."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                logits = self.model(images)
                if classes is None:
                    classes = logits.argmax(dim=1)
                classes = torch.as_tensor(classes, device=logits.device).view(-1, 1)
                score = logits.gather(1, classes).sum()  # in eval mode images do not interact
                torch.autograd.backward(score, inputs=[self._activations])
            weights = self._gradients.mean(dim=(2, 3), keepdim=True)
            cams = F.relu((weights * self._activations).sum(dim=1, keepdim=True)).detach()
            cams = F.interpolate(cams.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
            return normalise(cams[:, 0]), logits.detach()
        finally:
            self._activations = self._gradients = None
            self.model.train(was_training)

    def close(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "GradCAM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Min-max each ``(H, W)`` map of a batch to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = (high - low).clamp_min(1e-12)
    return ((flat - low) / span * (high > low)).view_as(maps)


def border_mask(height: int, width: int, band: float = BORDER_BAND) -> torch.Tensor:
    """True in the band of width ``band`` × side along every edge."""
    rows = torch.arange(height).float().add(0.5).div(height)
    cols = torch.arange(width).float().add(0.5).div(width)
    inside_rows = (rows >= band) & (rows <= 1 - band)
    inside_cols = (cols >= band) & (cols <= 1 - band)
    return ~(inside_rows[:, None] & inside_cols[None, :])


def mass_share(cams: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per map of ``(B, H, W)``: the share of CAM mass where ``masks`` (``(H, W)`` or ``(B, H, W)``,
    bool) is true; NaN for an empty map."""
    total = cams.flatten(1).sum(1)
    inside = (cams * masks.to(cams.device, cams.dtype)).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.full_like(total, float("nan")))


def border_share(cams: torch.Tensor, band: float = BORDER_BAND) -> torch.Tensor:
    """Per map of ``(B, H, W)``: the share of CAM mass in the border band (NaN for an empty map).

    A map spread evenly would give :func:`border_area`; much more than that means the model
    looks at the image edges (text markers, borders) rather than the lungs.
    """
    return mass_share(cams, border_mask(*cams.shape[-2:], band=band))


def border_area(band: float = BORDER_BAND) -> float:
    """The share of the image area that the border band covers (0.51 for a band of 0.15)."""
    return 1 - (1 - 2 * band) ** 2
