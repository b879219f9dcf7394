"""Train the lung segmenter: one U-Net per patient fold (k-fold, grouped by patient).

Fold ``i``'s model trains on the other folds' patients (10 % of all images, whole patients, held
back as its validation split to pick the best epoch) and never sees fold ``i``. Its held-out fold
measures it, and cross-fitting uses it: every image is segmented by the model of its patient's
fold, so no image's mask comes from a model that trained on that patient, and a class whose images
were annotated gets no better masks than one whose images were not.

Images and masks are resized (not cropped) to ``image_size``² once; each batch is jointly and
randomly rotated, scaled and shifted, and its contrast and brightness jittered. The loss is
binary cross-entropy plus soft Dice; Adam with a cosine decay to zero.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from runkit.device import autocast, grad_scaler, pick_device
from runkit.rundir import read_json
from runkit.seed import seed_everything

from ..folds import kfold_manifests
from ..images import read_grayscale
from ..manifest import Manifest
from .human import read_mask
from .network import build_network


CPU = torch.device("cpu")


@dataclass(frozen=True)
class SegmenterSettings:
    image_size: int = 256
    folds: int = 4
    epochs: int = 7
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    rotation: float = 10.0  # degrees either way
    scale: float = 0.1  # zoom drawn from [1 - scale, 1 + scale]
    shift: float = 0.06  # fraction of the side either way
    jitter: float = 0.2  # contrast and brightness drawn from [1 - jitter, 1 + jitter] and ±jitter/2

    def __post_init__(self):
        if self.image_size % 16:
            raise ValueError(f"--image-size {self.image_size}: must be a multiple of 16 (the encoder's stride)")
        if self.folds < 2 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("--folds must be >= 2, --epochs and --batch-size >= 1")


def resized(gray: np.ndarray, size: int, mask: bool = False) -> np.ndarray:
    """``gray`` stretched to ``size``×``size`` (bilinear; a mask re-thresholded at one half)."""
    image = Image.fromarray(gray.astype(np.uint8) * (255 if mask else 1))
    out = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return out >= 128 if mask else out


def load_pairs(manifest: Manifest, size: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(N, size, size)`` uint8 images and bool masks of the mask manifest, checked and resized."""
    images, masks = [], []
    for record in tqdm(manifest, desc=f"reading images and masks @ {size}px", disable=not progress, unit="img"):
        images.append(resized(read_grayscale(record.file), size))
        masks.append(resized(read_mask(record), size, mask=True))
    return np.stack(images), np.stack(masks)


def jointly_augmented(images: torch.Tensor, masks: torch.Tensor, settings: SegmenterSettings,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random similarity transform per pair, the same for image and mask, plus intensity jitter."""
    n = images.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * limit

    angle, zoom = uniform(math.radians(settings.rotation)), 1 + uniform(settings.scale)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, uniform(2 * settings.shift)], 1),
                         torch.stack([sin, cos, uniform(2 * settings.shift)], 1)], 1)
    both = torch.cat([images, masks], 1)
    grid = F.affine_grid(theta, list(both.shape), align_corners=False)
    moved = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    contrast = (1 + uniform(settings.jitter)).view(n, 1, 1, 1)
    brightness = (uniform(settings.jitter / 2)).view(n, 1, 1, 1)
    return (moved[:, :1] * contrast + brightness).clamp(0, 1), (moved[:, 1:] >= 0.5).float()


def loss_of(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice (per image, averaged)."""
    probs = torch.sigmoid(logits)
    overlap = (probs * masks).sum((1, 2, 3))
    soft_dice = (2 * overlap + 1) / (probs.sum((1, 2, 3)) + masks.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, masks) + (1 - soft_dice).mean()


def as_batch(uint8: np.ndarray, device: torch.device = CPU) -> torch.Tensor:
    """``(N, H, W)`` uint8 as a channels-last ``(N, 1, H, W)`` float batch in [0, 1] on ``device``."""
    return (torch.from_numpy(uint8).to(device).float().div_(255).unsqueeze(1)
            .contiguous(memory_format=torch.channels_last))


@torch.no_grad()
def mean_dice(network, images: np.ndarray, masks: np.ndarray, batch_size: int = 16,
              device: torch.device = CPU) -> float:
    """Mean per-image Dice at the training size (the validation score)."""
    network.eval()
    scores = []
    for start in range(0, len(images), batch_size):
        with autocast(device):
            predicted = network(as_batch(images[start:start + batch_size], device)) > 0
        truth = torch.from_numpy(masks[start:start + batch_size]).unsqueeze(1).to(device)
        overlap = (predicted & truth).sum((1, 2, 3)).float()
        scores += (2 * overlap / (predicted.sum((1, 2, 3)) + truth.sum((1, 2, 3))).clamp_min(1)).tolist()
    return float(np.mean(scores))


def train_fold(fold: Manifest, images: np.ndarray, masks: np.ndarray, settings: SegmenterSettings, index: int,
               progress: bool = True, device: torch.device = CPU) -> tuple[dict, dict]:
    """Train fold ``index``'s model on ``device`` (CUDA with mixed precision when given one);
    returns its best state (by validation Dice, on the CPU) and a log."""
    seed_everything(settings.seed + index)
    generator = torch.Generator().manual_seed(settings.seed + index)
    train = np.array([i for i, r in enumerate(fold) if r.split == "train"])
    val = np.array([i for i, r in enumerate(fold) if r.split == "val"])
    network = build_network(imagenet=True).to(device, memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(network.parameters(), lr=settings.lr)
    scaler = grad_scaler(device)
    steps = settings.epochs * math.ceil(len(train) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    best, history, started = (-1.0, None), [], time.perf_counter()
    bar = tqdm(total=steps, desc=f"fold {index + 1}/{settings.folds}", disable=not progress, unit="batch")
    for epoch in range(settings.epochs):
        network.train()
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        losses = []
        for start in range(0, len(order), settings.batch_size):
            chosen = order[start:start + settings.batch_size]
            x, y = jointly_augmented(as_batch(images[chosen]), as_batch(masks[chosen].astype(np.uint8) * 255),
                                     settings, generator)
            with autocast(device):
                logits = network(x.to(device).contiguous(memory_format=torch.channels_last))
            loss = loss_of(logits.float(), y.to(device))
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            schedule.step()
            losses.append(loss.item())
            bar.update()
        score = mean_dice(network, images[val], masks[val], device=device)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_dice": score})
        bar.set_postfix(val_dice=f"{score:.3f}")
        if score > best[0]:
            best = (score, {k: v.detach().cpu().clone() for k, v in network.state_dict().items()})
    bar.close()
    log = {"fold": index, "train_images": len(train), "val_images": len(val),
           "test_images": sum(r.split == "test" for r in fold), "best_val_dice": best[0],
           "seconds": time.perf_counter() - started, "history": history}
    return best[1], log


def masks_fingerprint(manifest: Manifest) -> str:
    """A short hash of the training pairs (image and mask checksums, patients), the same on every machine."""
    lines = sorted(f"{r.sha256} {r.extra['mask_sha256']} {r.patient_id}" for r in manifest)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def fold_manifests(manifest: Manifest, settings: SegmenterSettings) -> list[Manifest]:
    """The ``settings.folds`` patient folds of the mask manifest (train/val/test per fold)."""
    return kfold_manifests(manifest, settings.folds, settings.seed)


def train_segmenter(out: Path, manifest: Manifest, settings: SegmenterSettings, *, resume: bool = False,
                    overwrite: bool = False, progress: bool = True, device: str = "auto") -> Path:
    """Train every fold into run folder ``out`` and write ``out/lung-unet.safetensors``; a resumed run
    keeps the folds already saved. Returns the segmenter file."""
    chosen = pick_device(device)
    from safetensors.torch import load_file

    from runkit.rundir import RunLock, mark_finished, open_run, write_json

    from .segmenter import write_segmenter

    config = {"settings": asdict(settings), "masks": masks_fingerprint(manifest), "images": len(manifest)}
    with RunLock(out):
        open_run(out, config, overwrite=overwrite, resume=resume)
        images, masks = load_pairs(manifest, settings.image_size, progress)
        folds = fold_manifests(manifest, settings)
        states, logs = [], []
        for index, fold in enumerate(folds):
            saved, log_path = out / f"fold{index}.safetensors", out / f"fold{index}.json"
            if saved.is_file() and log_path.is_file():
                states.append(load_file(str(saved)))
                logs.append(read_json(log_path))
                continue
            state, log = train_fold(fold, images, masks, settings, index, progress, chosen)
            save_fold(saved, state)
            write_json(log_path, log)
            states.append(state)
            logs.append(log)
        patient_folds = {r.patient_id: index for index, fold in enumerate(folds) for r in fold if r.split == "test"}
        segmenter = out / "lung-unet.safetensors"
        write_segmenter(segmenter, states, patient_folds, {"settings": asdict(settings), "folds": logs,
                                                          "masks": config["masks"], "images": len(manifest)})
        mark_finished(out, {"segmenter": segmenter.name, "seconds": sum(log["seconds"] for log in logs)})
    return segmenter


def save_fold(path: Path, state: dict) -> None:
    """One fold's weights, atomically (the run resumes at the first fold without a file)."""
    from safetensors.torch import save

    from runkit.rundir import write_bytes

    write_bytes(path, save({k: v.contiguous() for k, v in state.items()}))
