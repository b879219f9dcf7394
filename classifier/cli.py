"""``cxr classify``: train and evaluate a classifier run, classify files, time the backbones."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from cxrdata import CLASSES, ManifestError
from runkit.device import pick_device
from runkit.rundir import RunExistsError

from .augment import AugmentSettings
from .config import AUGS, CAM_CLASSES, DEFAULT_SYNTH, PROFILES, ConfigError, make_config
from .data import SyntheticDataError
from .models import BACKBONES, CheckpointMismatchError, WeightsError

USER_ERRORS = (ConfigError, SyntheticDataError, RunExistsError, WeightsError, CheckpointMismatchError,
               ManifestError, FileNotFoundError)


def _default(name: str) -> str:
    """``[cpu: X; paper: Y]`` for the help text."""
    values = []
    for profile in PROFILES:
        config = make_config(profile)
        source = config.augment if name in AugmentSettings.__dataclass_fields__ else config
        values.append(f"{profile}: {getattr(source, name)}")
    return "[" + "; ".join(values) + "]"


def _option(name: str, help: str, **kwargs):
    """An option whose default comes from the profile (shown in the help)."""
    flag = "--" + name.replace("_", "-")
    return click.option(flag, name, default=None, show_default=False, help=f"{help} {_default(name)}",
                        **kwargs)


@click.group("classify")
def classify_cli():
    """Transfer-learning classifier (normal / covid / pneumonia): train on v1 or v2, evaluate
    with intervals and Grad-CAM, classify files, time the backbones."""


@classify_cli.command("train")
@click.option("--profile", type=click.Choice(list(PROFILES)), default="cpu", show_default=True,
              help="Starting settings: cpu (resnet18 from scratch, 10-15 min on 2 free cores) or paper "
                   "(the published VGG16/ImageNet settings, for a GPU). Every option below overrides it.")
@_option("dataset", "Manifest name in data_manifests/ (cxr3, makris2020) or a CSV path.")
@_option("aug", "v1: train split with classical augmentation; v2: v1 plus the synthetic covid images "
                "of --synth, in the training split only.", type=click.Choice(AUGS))
@click.option("--synth", "synth_manifest", default=None,
              help=f"v2: the synthesis run's manifest.csv (made by `make synth`). [default: {DEFAULT_SYNTH}]")
@_option("backbone", "torchvision backbone.", type=click.Choice(list(BACKBONES)))
@_option("weights", "imagenet (torchvision's weights; offline, place the file in the TORCH_HOME cache "
                    "as the error says), none (from scratch) or a path to a torchvision state dict.")
@_option("image_size", "Side of the square input images, px.", type=int)
@_option("batch_size", "Images per batch.", type=int)
@_option("epochs", "Training epochs in total (both stages).", type=int)
@_option("lr", "Adam learning rate of the head (from scratch: of every layer).", type=float)
@_option("head_epochs", "Pretrained only: stage 1 epochs training the head with the backbone frozen.",
         type=int)
@_option("finetune_lr", "Pretrained only: stage 2 learning rate of the unfrozen top blocks.", type=float)
@_option("unfreeze_blocks", "Pretrained only: top backbone blocks stage 2 trains (ResNet layers, VGG "
                            "convs, DenseNet/EfficientNet feature blocks).", type=int)
@_option("early_stopping", "Stop after this many epochs without a better validation score; 0: off.",
         type=int)
@click.option("--weighted-sampling/--no-weighted-sampling", default=None,
              help="Draw training images so each class is equally likely per draw. [default: off]")
@_option("rotation", "Augmentation: maximum random rotation, degrees either way.", type=float)
@_option("width_shift", "Augmentation: maximum horizontal shift, fraction of the width.", type=float)
@_option("height_shift", "Augmentation: maximum vertical shift, fraction of the height.", type=float)
@_option("zoom", "Augmentation: random scale in [1 - zoom, 1 + zoom].", type=float)
@_option("hflip", "Augmentation: probability of a horizontal flip. Flips MIRROR ANATOMY (heart on the "
                  "right); 0 turns them off.", type=float)
@click.option("--hide-lungs/--no-hide-lungs", default=None,
              help="Shortcut control: black out the central box [0.15, 0.85]² of every image (train, "
                   "val, test and predict). If accuracy stays high, the model is not using the lungs. "
                   "[default: off]")
@_option("cam_class", "Class the test-set Grad-CAM overlays explain: predicted, true, or a class name.",
         type=click.Choice(CAM_CLASSES))
@_option("seed", "Random seed (CPU runs repeat exactly).", type=int)
@_option("device", "auto (CUDA with mixed precision when present, else CPU), cpu, cuda or cuda:N.")
@click.option("--name", default=None,
              help="Run folder name under runs/classify/ [default: <dataset>-<aug>-<backbone>, "
                   "e.g. cxr3-v1-resnet18; '-lungs-hidden' added with --hide-lungs].")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Exact run folder (overrides --name).")
@click.option("--resume", is_flag=True, help="Continue the run from its last.pt (same settings; "
                                              "--epochs may grow).")
@click.option("--overwrite", is_flag=True, help="Delete an existing run of that name first.")
def train_cmd(profile: str, synth_manifest: str | None, weighted_sampling: bool | None,
              hide_lungs: bool | None, name: str | None, run_dir: Path | None, resume: bool,
              overwrite: bool, **settings):
    """Train on the train split, pick the best epoch on val, evaluate on test, write the report.

    Outputs in runs/classify/<name>/: config.json, TensorBoard scalars, best.pt, last.pt,
    train_images.csv, metrics.json, report.md, confusion.png, predictions.csv, gradcam.json and
    gradcam/ (an overlay per test image, a grid per class).
    """
    from .train import RUNS_ROOT, train_classifier

    try:
        config = make_config(profile, synth_manifest=synth_manifest, weighted_sampling=weighted_sampling,
                             hide_lungs=hide_lungs, **settings)
        target = run_dir or (RUNS_ROOT / name if name else None)
        run = train_classifier(config, target, resume=resume, overwrite=overwrite)
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt as exc:
        raise click.ClickException(str(exc) or "interrupted") from None
    click.echo((run / "report.md").read_text(encoding="utf-8").split("\n## Class balance")[0].strip())
    click.echo(f"\noutputs in {run}/ (report.md, metrics.json, predictions.csv, gradcam/)")


@classify_cli.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A trained run folder, e.g. runs/classify/cxr3-v1-resnet18 (its best.pt is used).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the CAM overlays [default: <run>/predict].")
@click.option("--cam-class", type=click.Choice(("predicted",) + CLASSES), default="predicted",
              show_default=True, help="Class each overlay explains.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def predict_cmd(images: tuple[Path, ...], run_dir: Path, out: Path | None, cam_class: str, device: str):
    """Classify PNG/JPEG/DICOM files: probabilities, predicted class and a Grad-CAM overlay each.

    Unreadable files are reported by name and skipped; the exit status is 1 if any failed.
    """
    from cxrdata import ImageReadError

    from .predict import predict_files

    failed = 0
    try:
        for result in predict_files(list(images), run_dir, out, cam_class, device):
            if isinstance(result, ImageReadError):
                failed += 1
                click.echo(f"skipped {result}", err=True)
                continue
            probabilities = "  ".join(f"{c} {p:.3f}" for c, p in result.probabilities.items())
            click.echo(f"{result.file}: {result.predicted}  ({probabilities}); CAM for "
                       f"{result.cam_class}, border share {result.border_share:.2f} → {result.overlay}")
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    if failed:
        click.echo(f"{failed} of {len(images)} file(s) could not be read (listed above)", err=True)
        sys.exit(1)


@classify_cli.command("bench")
@click.option("--backbones", default=",".join(BACKBONES), show_default=True,
              help="Comma-separated backbones to time.")
@click.option("--size", type=int, default=224, show_default=True, help="Image side, px.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Images per timed step.")
@click.option("--reps", type=int, default=3, show_default=True,
              help="Timed steps per measurement (the median is shown), after one warm-up step.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def bench_cmd(backbones: str, size: int, batch_size: int, reps: int, device: str):
    """Training and inference images/s and Grad-CAM ms/image per backbone (random weights)."""
    from .bench import bench_backbone

    names = [b.strip() for b in backbones.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKBONES]
    if unknown:
        raise click.ClickException(f"unknown backbone(s) {', '.join(unknown)}; choose from {', '.join(BACKBONES)}")
    try:
        torch_device = pick_device(device)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"device {torch_device}, {size} px, batch {batch_size}, median of {reps}")
    click.echo(f"{'backbone':<16} {'train img/s':>12} {'infer img/s':>12} {'Grad-CAM ms/img':>16}")
    for name in names:
        r = bench_backbone(name, size, batch_size, reps, device=torch_device)
        click.echo(f"{name:<16} {r['train_images_per_s']:>12.1f} {r['inference_images_per_s']:>12.1f} "
                   f"{r['gradcam_ms_per_image']:>16.1f}")
