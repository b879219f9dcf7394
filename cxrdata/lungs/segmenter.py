"""The trained lung segmenter: k fold models in one safetensors file, and masks for any image.

The file holds each fold model's weights (``fold<i>.<name>``, float16) and, in its metadata, the
settings it was trained with, the fold of every annotated patient and its validation scores. Its
sha256 is the segmenter's identity: cached masks are keyed by it.

Cross-fitting: an image is segmented by the model of its patient's fold. A patient of the
annotated set has the fold it was held out in; any other patient (or an image without one) gets
a fold from a hash of its id, so every image, annotated or not, is segmented the same way: by a
model that never saw that patient.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runkit.device import pick_device
from runkit.rundir import sha256_of, write_bytes

from .geometry import without_specks
from .network import build_network

FORMAT = "cxr-lung-unet/1"
SHIPPED = Path(__file__).resolve().parent / "weights" / "lung-unet.safetensors"
SEGMENTER_ENV = "CXR_SEGMENTER"  # another segmenter file (e.g. one retrained with `cxr lungs train`)
RETRAIN = "make lungs-train"


class SegmenterError(ValueError):
    """The segmenter file cannot be used; the message names it."""


def segmenter_path() -> Path:
    return Path(os.environ[SEGMENTER_ENV]).expanduser() if os.environ.get(SEGMENTER_ENV) else SHIPPED


def write_segmenter(path: Path, states: list[dict], patient_folds: dict[str, int], info: dict) -> None:
    """Save fold models ``states`` (as float16) with the patients' folds and ``info`` (settings, scores)."""
    from safetensors.torch import save

    tensors = {f"fold{i}.{k}": (v.half() if v.is_floating_point() else v).contiguous()
               for i, state in enumerate(states) for k, v in state.items()}
    metadata = {"format": FORMAT, "folds": str(len(states)), "patient_folds": json.dumps(patient_folds, sort_keys=True),
                "info": json.dumps(info, sort_keys=True)}
    write_bytes(path, save(tensors, metadata=metadata))


@functools.lru_cache(maxsize=2)
def default_segmenter(path: Path | None = None, device: str = "auto") -> "Segmenter":
    """The segmenter at ``path`` (default :func:`segmenter_path`) on ``device`` (CUDA when present),
    loaded once per process."""
    return Segmenter(path or segmenter_path(), pick_device(device))


def fold_of_id(identity: str, folds: int) -> int:
    """A stable fold for an id the segmenter never trained on."""
    return int(hashlib.sha256(identity.encode()).hexdigest()[:8], 16) % folds


class Segmenter:
    """The fold models of a segmenter file, ready to predict on CPU (or ``device``)."""

    def __init__(self, path: Path | str | None = None, device: str | torch.device = "cpu"):
        from safetensors import safe_open

        self.path = Path(path) if path else segmenter_path()
        if not self.path.is_file():
            raise SegmenterError(f"{self.path}: lung segmenter not found; retrain it with `{RETRAIN}` or set "
                                 f"{SEGMENTER_ENV}")
        try:
            with safe_open(str(self.path), framework="pt") as fh:
                metadata = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:  # safetensors raises several types for a damaged file
            raise SegmenterError(f"{self.path}: not a readable segmenter file ({exc})") from None
        if metadata.get("format") != FORMAT:
            raise SegmenterError(f"{self.path}: not a {FORMAT} file (format {metadata.get('format')!r})")
        self.checksum = sha256_of(self.path)
        self.folds = int(metadata["folds"])
        self.patient_folds: dict[str, int] = json.loads(metadata["patient_folds"])
        self.info: dict = json.loads(metadata["info"])
        self.image_size = int(self.info["settings"]["image_size"])
        self.device = torch.device(device)
        self._tensors = tensors

    @functools.cached_property
    def models(self) -> list[torch.nn.Module]:
        """The fold models, built on first use (a run whose masks are all cached never needs them)."""
        models = []
        for i in range(self.folds):
            with torch.random.fork_rng(devices=[]):  # a model's random init must not move the caller's RNG
                network = build_network(imagenet=False)
            prefix = f"fold{i}."
            state = {k[len(prefix):]: v.float() if v.is_floating_point() else v
                     for k, v in self._tensors.items() if k.startswith(prefix)}
            network.load_state_dict(state, strict=True)
            models.append(network.eval().to(self.device, memory_format=torch.channels_last))
        del self._tensors
        return models

    def fold_for(self, patient_id: str | None, image_sha256: str) -> int:
        """The fold whose model segments this image (see the module's docstring)."""
        if patient_id and patient_id in self.patient_folds:
            return self.patient_folds[patient_id]
        return fold_of_id(patient_id or image_sha256, self.folds)

    @torch.no_grad()
    def probabilities(self, grays: list[np.ndarray], fold: int) -> list[np.ndarray]:
        """Lung probability maps at each image's own size, from fold ``fold``'s model."""
        size = self.image_size
        batch = torch.stack([F.interpolate(torch.tensor(g, dtype=torch.float32)[None, None], size=(size, size),
                                           mode="bilinear", antialias=True, align_corners=False)[0]
                             for g in grays]).div_(255)
        logits = self.models[fold](batch.to(self.device).contiguous(memory_format=torch.channels_last)).float().cpu()
        return [torch.sigmoid(F.interpolate(logit[None], size=g.shape, mode="bilinear", align_corners=False))[0, 0]
                .numpy() for logit, g in zip(logits, grays)]

    def masks(self, grays: list[np.ndarray], fold: int) -> list[np.ndarray]:
        """Boolean lung masks at each image's own size, specks removed."""
        return [without_specks(p >= 0.5) for p in self.probabilities(grays, fold)]
