"""``cxr gan``: train the CycleGAN, synthesise covid images, time a training iteration."""
from __future__ import annotations

import functools
from pathlib import Path

import click
import numpy as np

from cxrdata import CXRDataset, Manifest, manifest_path

from runkit.errors import OneLineErrors
from runkit.options import device_option, int_list, overwrite_option, renamed_option
from runkit.distributed import world_from_env

from .bench import BENCH_SIZES, seconds_per_iteration
from .config import FIELDS, HELP, PROFILES, REGIONS, from_profile, from_run
from .realism.features import DEFAULT_NETWORK, INPUT_SIZE, train_feature_network
from .synth import DIRECTIONS, remeasure, synthesize
from .train import RUNS_ROOT, train

CLICK_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
CONFIG_FIELDS = [name for name in FIELDS if name != "profile"]
OLD_NAMES = {"dataset": ("--manifest",), "image_size": ("--size",)}  # options renamed on 2026-12-04


def profile_option(f, default: str | None = "cpu"):
    return click.option("--profile", type=click.Choice(list(PROFILES)), default=default,
                        help="Settings preset: cpu (fits ~15 min on 2 cores) or paper (256 px, 9 blocks, "
                             "ngf 64, 5000 iterations; for a GPU). Options below override single settings. "
                             "[default: cpu]")(f)


def config_options(f):
    """One ``--option`` per config field (default: the profile's value)."""
    for name in reversed(CONFIG_FIELDS):
        spec = FIELDS[name]
        values = {p: getattr(c, name) for p, c in PROFILES.items()}
        defaults = (f"default: {values['cpu']}" if len(set(map(str, values.values()))) == 1
                    else ", ".join(f"{p}: {v}" for p, v in values.items()))
        flag = name.replace("_", "-")
        decls = [f"--{flag}/--no-{flag}"] if spec.type == "bool" else [f"--{flag}"]
        f = renamed_option(*decls, name, old=OLD_NAMES.get(name, ()),
                           type=CLICK_TYPES[spec.type] if spec.type != "bool" else None, default=None,
                           show_default=False, help=f"{HELP[name]} [{defaults}]")(f)
    return f


@click.group("gan", cls=OneLineErrors)
def gan_cli():
    """The CycleGAN between two domains of training images: normal (A) → covid (B) by default, or
    any label/source filters (--domain-a, --domain-b), e.g. NIH style → the other sources' style."""


@gan_cli.command("train")
@functools.partial(profile_option, default=None)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Start from the settings of a run's config.json (e.g. runs/gan/cpu/config.json); the options "
                   "given override them. Not with --profile.")
@config_options
@click.option("--name", default=None, help="Run name: the run goes to runs/gan/<name> [default: the profile].")
@renamed_option("--out", "run_dir", old=("--run",), type=click.Path(file_okay=False, path_type=Path), default=None,
                help="Run directory anywhere, instead of --name.")
@click.option("--resume", is_flag=True, help="Continue the run from its checkpoint "
              "(settings must match, except iterations, device and the logging intervals).")
@overwrite_option("Delete the run there first, finished or not.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_cmd(profile: str | None, config_file: Path | None, name: str | None, run_dir: Path | None, resume: bool,
              overwrite: bool, quiet: bool, **settings):
    """Train (or --resume) a CycleGAN; TensorBoard events, grids and checkpoints go to the run
    directory. Ctrl-C saves a checkpoint at the end of the current iteration. Under torchrun
    (make gan-train NPROC=N) --batch-size is per process: N processes at batch b train as one
    process at batch N·b would."""
    if name and run_dir:
        raise click.UsageError("pass --name or --out, not both")
    if profile and config_file:
        raise click.UsageError("pass --profile or --config, not both")
    config = from_run(config_file, **settings) if config_file else from_profile(profile or "cpu", **settings)
    run_dir = train(config, RUNS_ROOT / name if name else run_dir, resume=resume, overwrite=overwrite,
                    progress=not quiet)
    if world_from_env().is_main:
        click.echo(f"finished: {run_dir} (TensorBoard: make tensorboard; samples in {run_dir / 'samples'})")


@gan_cli.command("synth")
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              default=RUNS_ROOT / "cpu", show_default=True, help="Run directory holding checkpoint.pt.")
@click.option("--n", "n", type=int, default=100, show_default=True,
              help="Number of synthetic images (distinct training parents).")
@click.option("--direction", type=click.Choice(list(DIRECTIONS)), default="a2b", show_default=True,
              help="a2b: domain A's images through G_A (normal → covid by default); b2a: through G_B.")
@click.option("--images", default=None,
              help="Which training images to translate, a filter like the run's domains (e.g. "
                   "'label=covid' or 'source=nih;label=pneumonia') [default: the direction's source domain]. "
                   "A synthetic image keeps its parent's label unless the run is a label translation.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed that picks the parents.")
@click.option("--region", type=click.Choice(REGIONS), default=None,
              help="The region the run was trained on (full or lungs), to be sure of it: another is refused "
                   "[default: the run's]. A lungs run pastes the translated lungs into each parent.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: data/synthetic/<run name>].")
@overwrite_option("Replace an existing synthesis in --out.")
@device_option()
@click.option("--quiet", is_flag=True, help="No progress bars.")
def synth_cmd(run_dir: Path, n: int, direction: str, images: str | None, seed: int, region: str | None,
              out: Path | None, overwrite: bool, device: str, quiet: bool):
    """Translate N real training images with one of the run's generators (default: normal →
    covid with G_A), writing PNGs, manifest.csv (each image's parent, its label and source, the
    direction, the run) and a report (JSON + PNG)."""
    out = synthesize(run_dir, n, seed=seed, out=out, overwrite=overwrite, device=device,
                     direction=direction, images=images, region=region, progress=not quiet)
    click.echo(f"{n} synthetic images in {out}; manifest {out / 'manifest.csv'}; report {out / 'report.json'}")


@gan_cli.command("realism")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--network", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_NETWORK,
              show_default=True, help="Feature network (its .sha256 must sit beside it).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def realism_cmd(folder: Path, network: Path, quiet: bool):
    """Measure a synthesis FOLDER again (made by `cxr gan synth`): Fréchet distance, precision and
    recall on the fixed CXR feature network against the real target-domain training images, with
    the real floor and the parents' baseline, and the checkerboard score; rewrites its report.json
    and report.md."""
    remeasure(folder, network, progress=not quiet)
    click.echo((folder / "report.md").read_text(encoding="utf-8"))


@gan_cli.command("features-train")
@renamed_option("--dataset", "manifest", old=("--manifest",), default="cxr3", show_default=True,
                help="Manifest whose train split trains it (val chooses the epoch).")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True, help="Training epochs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_NETWORK, show_default=True,
              help="Weights file; its .sha256 is written beside it.")
@overwrite_option("Replace an existing network (a new version: old numbers "
                                                "no longer compare).")
def features_train_cmd(manifest: str, epochs: int, seed: int, out: Path, overwrite: bool):
    """Rebuild the realism feature network: a small CNN trained to tell normal / covid / pneumonia
    on the manifest's training split; its 64-d pooled layer is the feature space of the Fréchet
    distance and precision / recall."""
    if out.exists() and not overwrite:
        raise click.UsageError(f"{out} exists; pass --overwrite to replace it (numbers on the old one no "
                               "longer compare)")
    data = Manifest.read(manifest_path(manifest))
    splits = {}
    for split in ("train", "val"):
        rows = data.select(split=split)
        splits[split] = (CXRDataset(rows, INPUT_SIZE).images, np.asarray(rows.labels))
    summary = train_feature_network(splits["train"], splits["val"], out, epochs=epochs, seed=seed)
    click.echo(f"{out}: best epoch {summary['best_epoch']}, val accuracy {summary['val_accuracy']:.3f}; "
               f"checksum in {out.with_suffix('.sha256')}")


@gan_cli.command("bench")
@profile_option
@renamed_option("--sizes", "sizes", old=("--size",), multiple=True, default=(",".join(map(str, BENCH_SIZES)),),
                show_default=True, help="Image sizes in px, comma-separated (or the option repeated).")
@click.option("--reps", type=click.IntRange(1), default=3, show_default=True,
              help="Timed iterations per size (median reported).")
@click.option("--warmup", type=click.IntRange(0), default=1, show_default=True, help="Untimed iterations first.")
@device_option(None, "auto, cpu, cuda or cuda:N [default: the profile's].")
@click.option("--channels-last/--no-channels-last", default=None, help="Memory format [default: the profile's].")
def bench_cmd(profile: str, sizes: tuple[int, ...], reps: int, warmup: int, device: str | None,
              channels_last: bool | None):
    """Seconds per training iteration (G and D steps, random images, no data loading) of the
    profile's architecture at each size on the current device."""
    config = from_profile(profile, device=device, channels_last=channels_last)
    click.echo(f"CycleGAN {profile} profile: ngf {config.ngf}, {config.n_blocks} blocks, "
               f"batch {config.batch_size}, device {config.device}, channels_last {config.channels_last}")
    for size in int_list(",".join(sizes), "--sizes"):
        t = seconds_per_iteration(config, size, reps=reps, warmup=warmup)
        click.echo(f"  {size:4d} px: {t['median']:.3f} s/iter (min {t['min']:.3f}, max {t['max']:.3f})")
