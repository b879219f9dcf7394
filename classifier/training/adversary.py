"""A class-conditional source adversary: penalise features that tell an image's source within its class.

Source and label are entangled in the corpus (every covid training image is non-NIH), so an
adversary that predicts the source from the features would also erase the disease. This one
predicts the source *within the image's class*: one small head per class that has images from two
or more real sources in the training split, on the backbone's pooled features (the head's
input), behind a gradient-reversal layer. The heads learn to tell NIH pneumonia from ieee8023
pneumonia; the reversed gradient pushes the backbone to make that impossible, while the class
stays free to be predicted. Synthetic images and classes with one source contribute nothing.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cxrdata import CLASSES, Manifest

SYNTHETIC = "synthetic"


class AdversaryError(ValueError):
    """The adversary cannot work on these data; the message says why."""


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times ``-weight`` backward."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.weight * grad, None


def reverse_gradient(features: torch.Tensor, weight: float) -> torch.Tensor:
    return GradientReversal.apply(features, weight)


def sources_per_class(manifest: Manifest) -> dict[str, list[str]]:
    """Each class with two or more real sources in ``manifest``: its sources, sorted."""
    found: dict[str, set[str]] = {}
    for record in manifest:
        if record.source != SYNTHETIC:
            found.setdefault(record.label, set()).add(record.source)
    return {c: sorted(found[c]) for c in CLASSES if len(found.get(c, ())) >= 2}


def check_sources(manifest: Manifest, origin: str) -> dict[str, list[str]]:
    """:func:`sources_per_class`, refusing data where no class has two sources."""
    per_class = sources_per_class(manifest)
    if not per_class:
        raise AdversaryError(f"--source-adversary: in {origin}'s training split every class comes from a single "
                             "source, so there is no source to tell apart within a class; train without it")
    return per_class


class SourceAdversary(nn.Module):
    """One linear head per class in ``sources`` (class → its sources) over ``features`` features."""

    def __init__(self, features: int, sources: dict[str, list[str]]):
        super().__init__()
        self.sources = sources
        self.heads = nn.ModuleDict({c: nn.Linear(features, len(names)) for c, names in sources.items()})

    def source_targets(self, labels: list[str], sources: list[str]) -> torch.Tensor:
        """Per image, its source's index within its class's head, or -1 (no head, synthetic)."""
        return torch.tensor([self.sources[c].index(s) if c in self.sources and s in self.sources[c] else -1
                             for c, s in zip(labels, sources)])

    def forward(self, features: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor):
        """Summed cross-entropy of every head on its class's images, the number of images it
        judged and how many it got right (its loss is the sum over images / their number)."""
        loss, seen, correct = features.new_zeros(()), 0, 0
        for name, head in self.heads.items():
            mask = (labels == CLASSES.index(name)) & (targets >= 0)
            if mask.any():
                logits = head(features[mask])
                logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 autocast → fp32
                loss = loss + F.cross_entropy(logits, targets[mask], reduction="sum")
                seen += int(mask.sum())
                correct += int((logits.argmax(1) == targets[mask]).sum())
        return loss, seen, correct


def adversary_weight(weight: float, epoch: int, warmup: int) -> float:
    """The reversal weight at 0-based ``epoch``: linear from weight/warmup up to ``weight``."""
    return weight * min(1.0, (epoch + 1) / warmup) if warmup else weight
