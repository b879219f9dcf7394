"""Synthesis: translate N real normal training images into synthetic covid images with G_A, with a
manifest that records each image's parent, the checkpoint and the seed, and a report."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cxrdata import CXRDataset, Manifest, Record, manifest_path
from cxrdata.manifest import sha256_of
from runkit.checkpoint import load
from runkit.device import autocast, pick_device
from runkit.rundir import write_json

from .config import FIELDS, GANConfig
from .data import DOMAIN_LABELS, to_uint8, to_unit_range
from .model import build_generator, load_network
from .report import save_pairs_figure, synthesis_metrics
from .train import CHECKPOINT

SYNTH_ROOT = Path("data") / "synthetic"
LABEL = DOMAIN_LABELS["B"]
EXTRA_COLUMNS = ("parent_path", "parent_image_id", "checkpoint_sha256", "gan_run", "seed")
BATCH = 8


def default_out_dir(run_dir: Path | str) -> Path:
    return SYNTH_ROOT / Path(run_dir).resolve().name


def load_generator(run_dir: Path | str, device: torch.device) -> tuple[torch.nn.Module, GANConfig, Path]:
    """G_A (normal → covid) of the run's checkpoint, its config and the checkpoint path."""
    checkpoint = Path(run_dir) / CHECKPOINT
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint; train first (cxr gan train) or pass "
                                "the right --run")
    state = load(checkpoint)
    if "G_A" not in state or "config" not in state:
        raise ValueError(f"{checkpoint}: not a CycleGAN checkpoint of this project (no G_A or config)")
    unknown = sorted(set(state["config"]) - set(FIELDS))
    if unknown:
        raise ValueError(f"{checkpoint}: its config has settings this code does not know: {', '.join(unknown)}")
    config = GANConfig(**state["config"])
    generator = build_generator(config)
    load_network(generator, state["G_A"], "G_A", checkpoint)
    return generator.to(device).eval(), config, checkpoint


def choose_parents(normals: Manifest, n: int, seed: int) -> list[int]:
    """``n`` distinct indices into ``normals``, drawn with ``seed``."""
    if n <= 0:
        raise ValueError(f"--n must be positive, got {n}")
    if n > len(normals):
        raise ValueError(f"--n {n} exceeds the {len(normals)} normal training images in {normals.name}")
    return torch.randperm(len(normals), generator=torch.Generator().manual_seed(seed))[:n].tolist()


@torch.no_grad()
def translate(generator: torch.nn.Module, images: np.ndarray, device: torch.device,
              progress: bool = True) -> np.ndarray:
    """uint8 ``(N, S, S)`` → uint8 ``(N, S, S)`` through ``generator``, in batches."""
    out = []
    for start in tqdm(range(0, len(images), BATCH), disable=not progress, desc="synthesising", unit="batch"):
        batch = to_unit_range(torch.from_numpy(images[start:start + BATCH]).unsqueeze(1)).to(device)
        with autocast(device):
            out.append(to_uint8(generator(batch)).squeeze(1).cpu().numpy())
    return np.concatenate(out)


def synthesize(run_dir: Path | str, n: int, *, seed: int = 0, out: Path | str | None = None,
               overwrite: bool = False, device: str = "auto", progress: bool = True) -> Path:
    """Write ``n`` synthetic covid PNGs to ``<out>/covid/``, ``<out>/manifest.csv`` (read it with
    ``Manifest.read(csv, root=csv.parent)``), ``report.json`` and ``report.png``; returns ``out``
    (default ``data/synthetic/<run name>``). Nothing is left behind on error."""
    out = Path(out or default_out_dir(run_dir))
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a synthesis; pass --overwrite to replace it or choose --out")
    torch_device = pick_device(device)
    generator, config, checkpoint = load_generator(run_dir, torch_device)
    manifest = Manifest.read(manifest_path(config.manifest))
    normals = manifest.select(split="train", label=DOMAIN_LABELS["A"])
    chosen = choose_parents(normals, n, seed)
    parents = Manifest([normals[i] for i in chosen], name=f"{manifest.name}-parents")
    parent_images = CXRDataset(parents, config.size, progress=progress).images
    synthetic = translate(generator, parent_images, torch_device, progress)
    covid = CXRDataset(manifest.select(split="train", label=LABEL), config.size, progress=progress).images

    staging = _staging_dir(out)
    try:
        provenance = {"checkpoint_sha256": sha256_of(checkpoint), "gan_run": Path(run_dir).resolve().name,
                      "seed": str(seed)}
        records = [_write_image(staging, out, parent, image, provenance)
                   for parent, image in zip(parents, synthetic)]
        Manifest(records, name=out.name).write(staging / "manifest.csv", extra_columns=EXTRA_COLUMNS)
        names = [r.extra["parent_image_id"] for r in records]
        save_pairs_figure(parent_images, synthetic, names, staging / "report.png")
        write_json(staging / "report.json", {
            **provenance, "n": n, "seed": seed, "size": config.size, "checkpoint": str(checkpoint),
            "manifest": config.manifest, "real_covid_training_images": len(covid),
            "metrics": synthesis_metrics(parent_images, synthetic, covid)})
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _staging_dir(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / LABEL).mkdir(parents=True)
    except OSError as exc:
        raise PermissionError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return staging


def _write_image(staging: Path, out: Path, parent: Record, image: np.ndarray, provenance: dict) -> Record:
    parent_id = parent.extra.get("image_id") or Path(parent.path).stem
    relative = f"{LABEL}/{parent_id}-synthetic.png"
    Image.fromarray(image).save(staging / relative)
    return Record(path=relative, label=LABEL, split="train", patient_id=parent.patient_id,
                  source="synthetic", sha256=sha256_of(staging / relative), file=out / relative,
                  extra={"parent_path": parent.path, "parent_image_id": parent_id, **provenance})
