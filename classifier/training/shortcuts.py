"""Shortcut mitigations: make the image *source* a worse predictor of the label.

In cxr3 almost every normal and pneumonia image is an NIH hospital PNG and almost every covid
image a figure from a paper or website, so a classifier can learn "not NIH-looking → covid".
Three counter-measures, each a setting of the classifier (see ``docs/results/2026-11-generalisation.md`` for
what each one measurably does):

* :func:`restyle` (``style_augment``): random source-like changes to every training image —
  gamma, contrast and brightness, blur, noise, JPEG re-compression, a constant band over one
  border and bright burned-in markers — so that such styles stop marking one class.
* :func:`classifier.model.inputs.equalize_histogram` (``equalize``): per-image histogram equalisation inside the model's
  input path (train, validation, test, predict alike), which removes every monotonic intensity
  difference between sources.
* :func:`source_balanced_weights` (``source_balanced``): draw training images so that within
  each class every source is equally likely, keeping the class frequencies.

Random numbers come from torch's global generator, so a seed and a resumed checkpoint repeat a
run exactly.
"""
from __future__ import annotations

import io
import math
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

STYLE_P = 0.5  # probability of each style change, drawn independently per image


def _chance(n: int, p: float = STYLE_P) -> torch.Tensor:
    return torch.rand(n) < p


def _between(n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n)


def restyle(images: torch.Tensor) -> torch.Tensor:
    """A copy of a ``(B, 1, H, W)`` batch in [0, 1] with random source-style changes."""
    n, _, height, width = images.shape
    out = images.clone()
    view = lambda t: t.view(n, 1, 1, 1).to(out.device)  # noqa: E731  (per-image values)

    gamma = torch.exp(_between(n, -math.log(2.0), math.log(2.0)))
    out = torch.where(view(_chance(n)), out.clamp_min(1e-6) ** view(gamma).to(out), out)
    contrast, brightness = _between(n, 0.6, 1.4), _between(n, -0.15, 0.15)
    shifted = (out - 0.5) * view(contrast).to(out) + 0.5 + view(brightness).to(out)
    out = torch.where(view(_chance(n)), shifted, out).clamp(0, 1)
    out = _blur(out, _chance(n, 0.3), _between(n, 0.3, 1.5) * height / 96)
    noise = torch.randn_like(out) * view(_between(n, 0.0, 0.05)).to(out)
    out = torch.where(view(_chance(n, 0.3)), (out + noise).clamp(0, 1), out)
    out = _jpeg(out, _chance(n, 0.3), torch.randint(15, 90, (n,)))
    out = _border_band(out, _chance(n, 0.3))
    return _markers(out, _chance(n, 0.3))


def _blur(images: torch.Tensor, chosen: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of the chosen images, each with its own ``sigma`` in pixels."""
    if not chosen.any():
        return images
    radius = int(math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernels = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None].to(images.dtype) ** 2))
    kernels = (kernels / kernels.sum(1, keepdim=True)).to(images.device)
    n = images.shape[0]
    flat = images.transpose(0, 1)  # (1, B, H, W): one group per image
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernels.view(n, 1, 1, -1), groups=n)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernels.view(n, 1, -1, 1), groups=n)
    return torch.where(chosen.view(n, 1, 1, 1).to(images.device), flat.transpose(0, 1), images)


def _jpeg(images: torch.Tensor, chosen: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress and decode the chosen images at their own ``quality``."""
    out = images.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        gray = (images[i, 0].detach().cpu().numpy() * 255).round().astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(gray).save(buffer, format="JPEG", quality=int(quality[i]))
        decoded = np.asarray(Image.open(buffer).convert("L"), dtype=np.float32) / 255
        out[i, 0] = torch.from_numpy(decoded).to(out)
    return out


def _border_band(images: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Cover up to 12 % of one random side of the chosen images with a constant grey level."""
    out = images.clone()
    n, _, height, width = images.shape
    sides, depth, level = torch.randint(0, 4, (n,)), _between(n, 0.02, 0.12), torch.rand(n)
    for i in torch.nonzero(chosen).flatten().tolist():
        rows, cols = max(1, round(float(depth[i]) * height)), max(1, round(float(depth[i]) * width))
        region = {0: (slice(0, rows), slice(None)), 1: (slice(height - rows, None), slice(None)),
                  2: (slice(None), slice(0, cols)), 3: (slice(None), slice(width - cols, None))}[int(sides[i])]
        out[i, 0][region] = float(level[i])
    return out


def _markers(images: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Burn one to three bright rectangles (like side markers or text) into the chosen images."""
    out = images.clone()
    n, _, height, width = images.shape
    for i in torch.nonzero(chosen).flatten().tolist():
        for _ in range(int(torch.randint(1, 4, ()))):
            h = max(1, round(float(_between(1, 0.03, 0.08)) * height))
            w = max(1, round(float(_between(1, 0.03, 0.12)) * width))
            top, left = int(torch.randint(0, height - h + 1, ())), int(torch.randint(0, width - w + 1, ()))
            out[i, 0, top:top + h, left:left + w] = float(_between(1, 0.75, 1.0))
    return out


def source_balanced_weights(labels: list[int], sources: list[str]) -> torch.Tensor:
    """Sampling weights under which, within each class, every source is drawn equally often
    and each class keeps its share of the training set."""
    per_pair = Counter(zip(labels, sources))
    per_class = Counter(labels)
    sources_of = Counter(label for label, _ in per_pair)
    return torch.tensor([per_class[y] / (sources_of[y] * per_pair[(y, s)]) for y, s in zip(labels, sources)],
                        dtype=torch.double)
