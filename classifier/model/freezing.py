"""Which parameters train: the head alone, then the top trunk blocks too, with frozen batch-norm
layers keeping their ImageNet statistics."""
from __future__ import annotations

from torch import nn

from classifier.model.backbones import CXRClassifier


def freeze_backbone(model: CXRClassifier) -> None:
    """Stage 1: only the head trains."""
    model.backbone.requires_grad_(False)
    model.head.requires_grad_(True)


def unfreeze_top(model: CXRClassifier, blocks: int) -> list[nn.Parameter]:
    """Stage 2: also train the top ``blocks`` trunk blocks; returns their parameters."""
    chosen = model.trunk_blocks()[-blocks:] if blocks > 0 else []
    params = [p for block in chosen for p in block.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def set_training_mode(model: nn.Module) -> None:
    """``model.train()``, but frozen batch-norm layers keep their ImageNet statistics."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters()):
            module.eval()
