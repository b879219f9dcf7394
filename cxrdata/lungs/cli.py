"""``cxr lungs``: the lung segmenter (train it, measure it, segment the corpus or your own images)."""
from __future__ import annotations

import shlex
import sys
from datetime import date
from pathlib import Path

import click
import numpy as np

from runkit.errors import OneLineErrors
from runkit.options import device_option, overwrite_option
from runkit.device import pick_device
from runkit.machine import describe
from runkit.rundir import runs_root

from ..manifest import Manifest, data_root, manifest_dir, manifest_path, patients_by_sha256, sha256_of
from .geometry import shape_of
from .inputs import QUESTION, lung_problem, lungs_of
from .human import build_mask_manifest, mask_manifest_path, masks_root, read_mask_manifest
from .segmenter import SEGMENTER_ENV, Segmenter, segmenter_path
from .training import SegmenterSettings, train_segmenter

CORPUS = "corpus"  # --dataset value meaning every image of the corpus's metadata.csv


def segmenter_option(command):
    command = device_option()(command)
    return click.option("--segmenter", "segmenter_file", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help=f"Segmenter file [default: ${SEGMENTER_ENV}, else the shipped "
                                           f"one, {segmenter_path().name}].")(command)


def corpus_manifest() -> Manifest:
    root = data_root()
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise click.ClickException(f"no chest X-ray corpus at {root}: `make fetch` downloads it, or set CXR_DATA")
    return Manifest.read(metadata, default_split="train")


def named_manifest(name: str) -> Manifest:
    return corpus_manifest() if name == CORPUS else Manifest.read(manifest_path(name))


def command_line() -> str:
    return "cxr " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@click.group("lungs", cls=OneLineErrors)
def lungs_cli():
    """The lung segmenter: a U-Net trained on human-drawn lung masks (V7 Labs, CC BY 4.0), k fold
    models so that no image is segmented by a model that saw its patient. Its masks feed the
    lungs-removed / lungs-only audit and the lungs-only classifier (docs/lungs.md)."""


@lungs_cli.command("manifest")
@click.option("--masks", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The masks' lung-masks.csv [default: <masks root>/lung-masks.csv; masks root: $CXR_LUNG_MASKS, "
                   "../shared/data/lung-masks or data/lung-masks].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Manifest to write [default: data_manifests/lung-masks.csv].")
def manifest_cmd(masks: Path | None, out: Path | None):
    """Write the lung-mask manifest (each mask with its image, patient and checksums), deterministically."""
    manifest = build_mask_manifest(masks or masks_root() / "lung-masks.csv", corpus_manifest(),
                                   out or mask_manifest_path())
    click.echo(f"{out or mask_manifest_path()}: {len(manifest)} masks")


@lungs_cli.command("train")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder [default: runs/lungs/segmenter]; the segmenter is <out>/lung-unet.safetensors.")
@click.option("--folds", type=int, default=SegmenterSettings.folds, show_default=True,
              help="Patient folds: one model per fold, each never sees its fold's patients.")
@click.option("--epochs", type=int, default=SegmenterSettings.epochs, show_default=True, help="Epochs per fold.")
@click.option("--image-size", type=int, default=SegmenterSettings.image_size, show_default=True,
              help="Side the images are resized to (a multiple of 16).")
@click.option("--batch-size", type=int, default=SegmenterSettings.batch_size, show_default=True, help="Batch size.")
@click.option("--lr", type=float, default=SegmenterSettings.lr, show_default=True, help="Adam's learning rate.")
@click.option("--seed", type=int, default=SegmenterSettings.seed, show_default=True,
              help="Seed of the folds, the initialisation and the augmentation.")
@device_option(help="auto (CUDA with mixed precision when present, else CPU), cpu, cuda or cuda:N.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run (finished folds are kept).")
@overwrite_option("Delete an existing run in --out first.")
def train_cmd(out: Path | None, device: str, resume: bool, overwrite: bool, **settings):
    """Train the fold models on the human masks (about 18 min on 2 CPU cores at the defaults)."""
    out = out or runs_root("lungs", "segmenter")
    try:
        chosen = SegmenterSettings(**settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    path = train_segmenter(out, read_mask_manifest(), chosen, resume=resume, overwrite=overwrite, device=device)
    click.echo(f"{path}: use it with {SEGMENTER_ENV}={path} or --segmenter {path}; `make lungs` measures it")


@lungs_cli.command("evaluate")
@segmenter_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder [default: runs/lungs/report].")
def evaluate_cmd(segmenter_file: Path | None, device: str, out: Path | None):
    """Held-out Dice and HD95 per source and label, and the predicted lungs where no human drew any
    (area, pieces, implausible masks, 32 overlays): report.md, report.json, overlays.png."""
    from .evaluation import write_report

    out = out or runs_root("lungs", "report")
    segmenter = Segmenter(segmenter_file or segmenter_path(), pick_device(device))
    summary = write_report(out, segmenter, corpus_manifest(), read_mask_manifest(), command_line(), describe(),
                           date.today().isoformat())
    for group, s in summary["held_out"].items():
        click.echo(f"{group}: Dice {s['dice']['mean']:.3f} (median {s['dice']['median']:.3f}), "
                   f"HD95 median {s['hd95_px']['median']:.1f} px, {s['images']} images")
    click.echo(f"{out / 'report.md'}")


@lungs_cli.command("segment")
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", default=None, help=f"Segment every image of a manifest (a name, a CSV path, or {CORPUS} "
                                              "for the whole corpus) into the mask cache.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the masks of IMAGES, one <name>-lungs.png each (required with IMAGES).")
@segmenter_option
def segment_cmd(images: tuple[Path, ...], dataset: str | None, out: Path | None, segmenter_file: Path | None,
                device: str):
    """Lung masks for your IMAGES (written to --out) or for a whole --dataset (cached, cross-fitted).
    An implausible mask (none, too small or large, many pieces) is named in one line."""
    from ..images import ImageReadError, read_grayscale
    from .cache import lung_masks, save_mask

    if bool(images) == bool(dataset):
        raise click.UsageError("give IMAGES (with --out) or --dataset, not both")
    segmenter = Segmenter(segmenter_file or segmenter_path(), pick_device(device))
    if dataset:
        manifest = named_manifest(dataset)
        shapes = [shape_of(m) for m in lung_masks(manifest, segmenter)]
        flagged = [(r, s) for r, s in zip(manifest, shapes) if s.problem]
        for record, shape in flagged:
            click.echo(f"{record.path}: {shape.problem}: {QUESTION}")
        click.echo(f"{len(manifest)} images of {manifest.name} segmented; lung area median "
                   f"{np.median([s.fraction for s in shapes]):.0%}; {len(flagged)} implausible")
        return
    if out is None:
        raise click.UsageError("--out is required with IMAGES")
    unreadable, patients = 0, patients_by_sha256(sorted(manifest_dir().glob("*.csv")))
    for path in images:
        try:
            gray = read_grayscale(path)
        except ImageReadError as exc:
            click.echo(str(exc), err=True)
            unreadable += 1
            continue
        sha256 = sha256_of(path)  # a manifest's image gets the mask its split gets
        mask = lungs_of(gray, sha256, patients.get(sha256), segmenter)
        save_mask(out / f"{path.stem}-lungs.png", mask)
        click.echo(f"{path}: " + (lung_problem(mask) or f"lungs {shape_of(mask).fraction:.0%} of the image"))
    if unreadable:
        raise click.ClickException(f"{unreadable} of {len(images)} file(s) could not be read (named above)")
