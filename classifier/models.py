"""Backbones for the 3-class classifier: torchvision models with a new head.

One grayscale channel reaches a 3-channel backbone in one way, inside the model
(:class:`GrayscaleInput`): the channel is repeated three times and normalised with the ImageNet
mean and standard deviation. Checkpoints therefore hold everything needed to read an image in
[0, 1], and the same normalisation is used whether the weights are ImageNet's or random.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from cxrdata import CLASSES

from .augment import hide_centre
from .shortcuts import equalize_histogram

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IDENTITY_DEFAULTS = {"equalize": False}  # checkpoints made before the setting existed


class WeightsError(ValueError):
    """Pretrained weights cannot be loaded; the message says which file to place where."""


class CheckpointMismatchError(ValueError):
    """A checkpoint was made for another backbone or input setting."""


@dataclass(frozen=True)
class Backbone:
    """Where a torchvision model keeps its classifier head, Grad-CAM layer and trunk blocks.

    Paths are dotted attribute names; integer parts index (``-1`` is the last element).
    """

    head: str
    cam_layer: str
    trunk: str  # the module whose parameterised children are the blocks "top of the backbone" counts


BACKBONES: dict[str, Backbone] = {
    "resnet18": Backbone(head="fc", cam_layer="layer4.-1", trunk=""),
    "resnet50": Backbone(head="fc", cam_layer="layer4.-1", trunk=""),
    "vgg16": Backbone(head="classifier.6", cam_layer="features.29", trunk="features"),
    "densenet121": Backbone(head="classifier", cam_layer="features", trunk="features"),
    "efficientnet_b0": Backbone(head="classifier.1", cam_layer="features.-1", trunk="features"),
}


def submodule(root: nn.Module, path: str) -> nn.Module:
    """The module at dotted ``path`` under ``root`` (``""`` is ``root``; ``-1`` is allowed)."""
    module = root
    for part in filter(None, path.split(".")):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = submodule(root, parent_path)
    if name.lstrip("-").isdigit():
        parent[int(name)] = new
    else:
        setattr(parent, name, new)


class GrayscaleInput(nn.Module):
    """(B, 1, H, W) in [0, 1] → (B, 3, H, W) ImageNet-normalised; optionally equalises each
    image's histogram first and hides the lungs."""

    def __init__(self, hide_lungs: bool = False, equalize: bool = False):
        super().__init__()
        self.hide_lungs = hide_lungs
        self.equalize = equalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != 1:
            raise ValueError(f"expected 1-channel images (B, 1, H, W), got shape {tuple(images.shape)}")
        if self.equalize:
            images = equalize_histogram(images)
        if self.hide_lungs:
            images = hide_centre(images)
        return (images.expand(-1, 3, -1, -1) - self.mean) / self.std


class CXRClassifier(nn.Module):
    """A torchvision backbone with a :data:`CLASSES`-sized head, fed by :class:`GrayscaleInput`."""

    def __init__(self, backbone_name: str, backbone: nn.Module, hide_lungs: bool = False,
                 equalize: bool = False):
        super().__init__()
        self.backbone_name = backbone_name
        self.spec = BACKBONES[backbone_name]
        self.input = GrayscaleInput(hide_lungs, equalize)
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.input(images))

    @property
    def head(self) -> nn.Module:
        return submodule(self.backbone, self.spec.head)

    @property
    def cam_layer(self) -> nn.Module:
        """The default Grad-CAM target layer of this backbone."""
        return submodule(self.backbone, self.spec.cam_layer)

    def trunk_blocks(self) -> list[nn.Module]:
        """The backbone's parameterised blocks from input to output, head excluded."""
        head = self.head
        return [m for m in submodule(self.backbone, self.spec.trunk).children()
                if m is not head and any(True for _ in m.parameters())]

    def identity(self) -> dict:
        """What a checkpoint must match to be loaded into this model."""
        return {"backbone": self.backbone_name, "hide_lungs": self.input.hide_lungs,
                "equalize": self.input.equalize, "classes": list(CLASSES)}


def build_model(backbone: str, weights: str = "none", hide_lungs: bool = False,
                equalize: bool = False) -> CXRClassifier:
    """A classifier on ``backbone`` with ``weights``: ``imagenet``, ``none`` or a state-dict path.

    A state-dict file holds the plain torchvision model (any head size: the head is replaced).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if weights == "imagenet":
        model = _imagenet_model(backbone)
    elif weights == "none":
        model = get_model(backbone, weights=None)
    else:
        model = get_model(backbone, weights=None)
        _load_state_dict_file(model, backbone, Path(weights))
    head_path = BACKBONES[backbone].head
    old_head = submodule(model, head_path)
    _replace(model, head_path, nn.Linear(old_head.in_features, len(CLASSES)))
    return CXRClassifier(backbone, model, hide_lungs, equalize)


def _imagenet_model(backbone: str) -> nn.Module:
    enum = get_model_weights(backbone).DEFAULT
    try:
        return get_model(backbone, weights=enum)
    except (OSError, RuntimeError) as exc:  # offline (URLError) or a damaged cached file
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        raise WeightsError(
            f"cannot load the ImageNet weights {enum} for {backbone} ({exc}). Download {enum.url} "
            f"on a machine with internet access and place it at {cached} (set TORCH_HOME to change "
            "the folder), pass --weights <path to that file>, or train from scratch with --weights none"
        ) from None


def _load_state_dict_file(model: nn.Module, backbone: str, path: Path) -> None:
    if not path.is_file():
        raise WeightsError(f"--weights {path}: no such file; pass imagenet, none or a state-dict path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise WeightsError(f"{path}: not a readable state dict ({exc})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict (name → tensor), got {type(state).__name__}")
    head_prefix = BACKBONES[backbone].head + "."
    body = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
    expected = {k for k in model.state_dict() if not k.startswith(head_prefix)}
    missing, unexpected = sorted(expected - body.keys()), sorted(body.keys() - expected)
    if missing or unexpected:
        raise WeightsError(f"{path}: not a {backbone} state dict (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}…)")
    try:
        model.load_state_dict(body, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise WeightsError(f"{path}: does not fit {backbone}: {exc}") from None


def checkpoint_payload(model: CXRClassifier, **extra) -> dict:
    """What best.pt holds: the model's identity and weights, plus ``extra``."""
    return {**model.identity(), "model": model.state_dict(), **extra}


def load_weights(model: CXRClassifier, checkpoint: dict, source: Path | str) -> None:
    """Load ``checkpoint``'s weights, refusing one made for another backbone or input setting."""
    for key, want in model.identity().items():
        have = checkpoint.get(key, IDENTITY_DEFAULTS.get(key))
        if have != want:
            raise CheckpointMismatchError(f"{source}: checkpoint has {key}={have!r} but this model has "
                                          f"{key}={want!r}; use the run's own settings or another run")
    model.load_state_dict(checkpoint["model"])


def model_from_checkpoint(checkpoint: dict, source: Path | str) -> CXRClassifier:
    """Rebuild the classifier a checkpoint describes (no pretrained download needed)."""
    if checkpoint.get("backbone") not in BACKBONES:
        raise CheckpointMismatchError(f"{source}: not a classifier checkpoint (backbone "
                                      f"{checkpoint.get('backbone')!r})")
    model = build_model(checkpoint["backbone"], "none", bool(checkpoint.get("hide_lungs")),
                        bool(checkpoint.get("equalize")))
    load_weights(model, checkpoint, source)
    return model


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
