"""``cxr experiment``: the experiment end to end (v1 vs v2 with intervals, one report) and v3's
counterfactual set."""
from __future__ import annotations

import time
from pathlib import Path

import click

from classifier.config import DEFAULT_COUNTERFACTUAL
from classifier.model.registry import backbone_names, BACKBONES
from runkit.errors import OneLineErrors
from runkit.device import PRECISIONS
from runkit.distributed import world_from_env
from runkit.rundir import read_json, runs_root
from runkit.timing import peak_rss_mib

from pipelines.experiment.compare import RUNS_ROOT, CompareConfig, CompareError, run_compare
from pipelines.experiment.counterfactual import PER_CLASS, make_counterfactual
from pipelines.experiment.demo import DEMO
from pipelines.experiment.report import headline_table
from runkit.options import int_list, key_values, overwrite_option, renamed_option


@click.group("experiment", cls=OneLineErrors)
def experiment_cli():
    """The experiment end to end: v1 vs v2 with intervals, one report; v3's counterfactual set."""


OUT_OPTION = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="Exact experiment folder anywhere (instead of --name).")


def experiment_options(command):
    options = [
        click.option("--dataset", default="cxr3", show_default=True,
                     help="Manifest: cxr3 (patient-split adult set) or makris2020 (published split) or a CSV."),
        click.option("--n", "n_synthetic", type=int, default=100, show_default=True,
                     help="Synthetic covid images added to the training set for v2."),
        click.option("--seeds", default="0,1,2", show_default=True,
                     help="Comma-separated seeds; v1 and v2 are trained once per seed on the same split."),
        click.option("--folds", type=int, default=0, show_default=True,
                     help="Grouped k-fold cross-validation over the whole dataset instead of its fixed split "
                          "(one GAN per fold; one seed). 0: off."),
        click.option("--backbone", default=None, type=click.Choice(list(BACKBONES)),
                     help=f"Classifier backbone: {backbone_names()} [default: the classifier profile's]."),
        click.option("--profile", "classifier_profile", default="cpu", show_default=True,
                     help="Classifier profile: cpu or paper (VGG16 at 224 px with Zebin & Rezvy's optimiser, batch "
                          "and epochs, top 3 blocks fine-tuned; for a GPU)."),
        click.option("--gan-profile", default="cpu", show_default=True, help="CycleGAN profile: cpu or paper."),
        click.option("--gan-run", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Reuse this trained CycleGAN run (fixed split only) instead of training one."),
        click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
                     help="Override a classifier setting, e.g. --set epochs=5 --set image_size=64; repeatable."),
        click.option("--gan-set", multiple=True, metavar="KEY=VALUE",
                     help="Override a CycleGAN setting, e.g. --gan-set iterations=300; repeatable."),
        click.option("--sweep", default="", help="Also train v2 with these synthetic counts, e.g. 0,50,100,200."),
        click.option("--holdout-source", default=None, metavar="SOURCE",
                     help="Leave this image source (e.g. figure1, ieee8023) out of training, validation and "
                          "test; its images are then classified out of source by every model."),
        renamed_option("--no-lung-controls", "no_lung_controls", old=("--no-lungs-hidden",), is_flag=True,
                       help="Skip the lung controls: v1 retrained (first replicate) with the central box blacked "
                            "out, with the segmenter's lungs removed, on the lungs only, and on their outline "
                            "alone."),
        click.option("--counterfactual", is_flag=True,
                     help="Also train v3 (v1 + counterfactual source translations, labels kept) and v2+v3 on every "
                          "replicate, with a source-translation CycleGAN trained on its training split only; the "
                          "report sets them beside v1 (docs/results/2026-11-generalisation.md). One process only."),
        click.option("--lung-gan", is_flag=True,
                     help="Also train v2-lungs on every replicate: v1 + covid images synthesised by a lungs-region "
                          "CycleGAN (trained on the replicate's training split, same settings) that changes only the "
                          "lungs of each normal parent and keeps the rest of it, pixel for pixel; the report sets "
                          "v2 and v2-lungs beside v1."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=None,
                     help="Arithmetic of every training step (the CycleGAN and the classifiers): fp32, bf16 "
                          "or auto; see `cxr classify train --help` [default: each profile's, auto]."),
        click.option("--name", default=None,
                     help="Experiment folder under runs/compare/ [default: from the settings]."),
        OUT_OPTION,
        overwrite_option(),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_config(dataset, n_synthetic, seeds, folds, backbone, classifier_profile, gan_profile, gan_run,
                 classifier_set, gan_set, sweep, holdout_source, no_lung_controls, counterfactual,
                 lung_gan, precision) -> CompareConfig:
    classifier, gan = key_values(classifier_set, "--set"), key_values(gan_set, "--gan-set")
    if backbone:
        classifier["backbone"] = backbone
    if precision:
        classifier["precision"] = gan["precision"] = precision
    try:
        return CompareConfig(dataset=dataset, n_synthetic=n_synthetic, seeds=int_list(seeds, "--seeds"),
                             folds=folds, classifier_profile=classifier_profile, classifier=classifier,
                             gan_profile=gan_profile, gan=gan,
                             gan_run=str(gan_run) if gan_run else None, sweep=int_list(sweep, "--sweep"),
                             holdout_source=holdout_source, lung_controls=not no_lung_controls,
                             counterfactual=counterfactual, lung_gan=lung_gan)
    except CompareError as exc:
        raise click.UsageError(str(exc)) from None


def experiment_folder(name: str | None, out: Path | None) -> Path | None:
    """``--out``, else ``--name`` under runs/compare/, else None (a name from the settings)."""
    if name and out:
        raise click.UsageError("pass --name or --out, not both")
    return out or (RUNS_ROOT / name if name else None)


def run_and_print(config: CompareConfig, out_dir: Path | None, overwrite: bool) -> None:
    start = time.perf_counter()
    out = run_compare(config, out_dir, overwrite=overwrite, log=click.echo)
    if not world_from_env().is_main:
        return  # rank 0 reports
    result = read_json(out / "report.json")
    click.echo(f"\nreport: {out / 'report.md'}\n")
    click.echo(headline_table(result))
    click.echo(f"\nthis run: {(time.perf_counter() - start) / 60:.1f} min, peak memory {peak_rss_mib() / 1024:.2f} GiB "
               "(finished steps are reused, not redone)")


@experiment_cli.command("compare")
@experiment_options
def compare_cmd(name, out, overwrite, **options):
    """Train v1 and v2 on the same split and seeds; report the v2 − v1 difference with its
    uncertainty, a shortcut audit, Grad-CAM grids and a progression figure."""
    run_and_print(build_config(**options), experiment_folder(name, out), overwrite)


@experiment_cli.command("demo")
@click.option("--name", default=None, help="Experiment folder under runs/compare/ [default: demo].")
@OUT_OPTION
@overwrite_option()
def demo_cmd(name, out, overwrite):
    """The whole experiment on the CPU demo settings (reuses finished steps when re-run)."""
    config = CompareConfig(seeds=DEMO["seeds"], classifier=DEMO["classifier"], gan=DEMO["gan"])
    run_and_print(config, experiment_folder(name, out) or RUNS_ROOT / "demo", overwrite)


@experiment_cli.command("counterfactual")
@click.option("--dataset", default="cxr3", show_default=True, help="Manifest whose training split is translated.")
@click.option("--gan-run", type=click.Path(file_okay=False, path_type=Path), default=runs_root("gan", "source-cpu"),
              show_default=True, help="The source-translation CycleGAN's run (trained here unless it finished with "
                                      "the same settings).")
@click.option("--gan-profile", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True,
              help="Settings preset of that CycleGAN.")
@click.option("--gan-set", multiple=True, metavar="KEY=VALUE", help="CycleGAN setting; repeatable.")
@click.option("--per-class", type=click.IntRange(1), default=PER_CLASS, show_default=True,
              help="Images translated per part (NIH normal, NIH pneumonia, covid), at most what the split has.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed that picks the images translated.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path(DEFAULT_COUNTERFACTUAL).parent,
              show_default=True, help="Folder of the set; --aug v3 reads its manifest.csv.")
@overwrite_option("Replace an existing set (and a GAN run with other settings).")
def counterfactual_cmd(dataset, gan_run, gan_profile, gan_set, per_class, seed, out, overwrite):
    """The counterfactual set of --aug v3: a CycleGAN trained on non-covid training images to
    translate NIH ↔ the other sources (style, not disease) turns NIH normal and pneumonia
    training images into the other sources' style and covid training images into NIH style,
    labels kept, so that every class appears in every style."""
    make_counterfactual(dataset, out, gan_run=gan_run, gan_profile=gan_profile, gan=key_values(gan_set, "--gan-set"),
                        per_class=per_class, seed=seed, overwrite=overwrite, log=click.echo)
    click.echo(f"manifest: {out / 'manifest.csv'} (train with --aug v3)")
