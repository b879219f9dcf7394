"""``cxr pipeline``: the experiment (compare, demo) and the disease-progression figure."""
from __future__ import annotations

import time
from pathlib import Path

import click

from cxrdata.manifest import Manifest, manifest_path
from classifier.config import DEFAULT_COUNTERFACTUAL
from runkit.cli import OneLineErrors
from runkit.device import PRECISIONS
from runkit.distributed import world_from_env
from runkit.rundir import read_json, runs_root
from runkit.timing import peak_rss_mib

from pipelines.studies.backbone_choice import RUNS_ROOT as BACKBONE_CHOICE_ROOT, run_backbone_choice
from pipelines.perf.bench import BACKBONES, run_bench
from pipelines.studies.choice import run_choice
from pipelines.experiment.compare import RUNS_ROOT, CompareConfig, CompareError, run_compare
from pipelines.experiment.counterfactual import PER_CLASS, make_counterfactual
from pipelines.studies.ganvariants import RUNS_ROOT as GAN_VARIANTS_ROOT, VARIANTS as GAN_VARIANTS, run_gan_variants
from pipelines.perf.gpucheck import DATA_DIR as GPU_CHECK_DATA, prepare_data, run_check
from pipelines.studies.mitigations import (AUGMENTATION_VARIANTS, RUNS_ROOT as MITIGATIONS_ROOT, SHORTCUT_PROOF_VARIANTS,
                          VARIANTS as MITIGATIONS, run_mitigations)
from pipelines.studies.precision import RUNS_ROOT as PRECISION_ROOT, run_precision_check
from classifier.progression import render
from pipelines.studies.reproduction import PROFILES as REPRODUCTION_PROFILES, PROTOCOLS, run_reproduction
from pipelines.studies.reproduction.runner import RUNS_ROOT as REPRODUCE_ROOT
from pipelines.experiment.report import headline_table

DEMO = {  # the CPU demo: every step of the experiment, small enough for 2 cores
    "seeds": (0, 1, 2),
    "classifier": {"epochs": 8, "image_size": 96},
    "gan": {},  # the cpu profile as measured by `make gan-variants` (800 iterations, resize upsampling)
}


def int_list(text: str | None, option: str) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v != "")
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers, got {text!r}",
                                 param_hint=option) from None


def key_values(pairs: tuple[str, ...], option: str) -> dict:
    """``("epochs=3", "image_size=64")`` → ``{"epochs": 3, "image_size": 64}`` (numbers parsed)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


@click.group("pipeline", cls=OneLineErrors)
def pipeline_cli():
    """The experiment end to end: v1 vs v2 with intervals, one report."""


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
        click.option("--backbone", default=None,
                     help="Classifier backbone (resnet18, vgg16, resnet50, efficientnet_b0, densenet121) "
                          "[default: the classifier profile's]."),
        click.option("--profile", "classifier_profile", default="cpu", show_default=True,
                     help="Classifier profile: cpu or paper (published settings, for a GPU)."),
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
        click.option("--no-lungs-hidden", is_flag=True,
                     help="Skip the control that retrains v1 with the lung region blacked out."),
        click.option("--counterfactual", is_flag=True,
                     help="Also train v3 (v1 + counterfactual source translations, labels kept) and v2+v3 on every "
                          "replicate, with a source-translation CycleGAN trained on its training split only; the "
                          "report sets them beside v1 (docs/generalisation.md). One process only."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=None,
                     help="Arithmetic of every training step (the CycleGAN and the classifiers): fp32, bf16 "
                          "or auto; see `cxr classify train --help` [default: each profile's, auto]."),
        click.option("--name", default=None, help="Experiment folder under runs/compare/ [default: from the settings]."),
        click.option("--overwrite", is_flag=True, help="Redo steps whose folders hold runs with other settings."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_config(dataset, n_synthetic, seeds, folds, backbone, classifier_profile, gan_profile, gan_run,
                 classifier_set, gan_set, sweep, holdout_source, no_lungs_hidden, counterfactual,
                 precision) -> CompareConfig:
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
                             holdout_source=holdout_source, lungs_hidden_control=not no_lungs_hidden,
                             counterfactual=counterfactual)
    except CompareError as exc:
        raise click.UsageError(str(exc)) from None


def run_and_print(config: CompareConfig, name: str | None, overwrite: bool) -> None:
    start = time.perf_counter()
    out = run_compare(config, RUNS_ROOT / name if name else None, overwrite=overwrite, log=click.echo)
    if not world_from_env().is_main:
        return  # rank 0 reports
    result = read_json(out / "report.json")
    click.echo(f"\nreport: {out / 'report.md'}\n")
    click.echo(headline_table(result))
    click.echo(f"\nthis run: {(time.perf_counter() - start) / 60:.1f} min, peak memory {peak_rss_mib() / 1024:.2f} GiB "
               "(finished steps are reused, not redone)")


@pipeline_cli.command("compare")
@experiment_options
def compare_cmd(name, overwrite, **options):
    """Train v1 and v2 on the same split and seeds; report the v2 − v1 difference with its
    uncertainty, a shortcut audit, Grad-CAM grids and a progression figure."""
    run_and_print(build_config(**options), name, overwrite)


@pipeline_cli.command("demo")
@click.option("--name", default="demo", show_default=True, help="Experiment folder under runs/compare/.")
@click.option("--overwrite", is_flag=True, help="Redo steps whose folders hold runs with other settings.")
def demo_cmd(name, overwrite):
    """The whole experiment on the CPU demo settings (reuses finished steps when re-run)."""
    config = CompareConfig(seeds=DEMO["seeds"], classifier=DEMO["classifier"], gan=DEMO["gan"])
    run_and_print(config, name, overwrite)


@pipeline_cli.command("precision")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per precision.")
@click.option("--n", "n_synthetic", type=click.IntRange(min=1), default=100, show_default=True,
              help="Images each run synthesises for the synthesis metrics.")
@click.option("--gan-set", multiple=True, metavar="KEY=VALUE",
              help="Override a CycleGAN setting of every run (default: the CPU profile); repeatable.")
@click.option("--name", default="cpu", show_default=True, help="Folder under runs/precision/.")
@click.option("--overwrite", is_flag=True, help="Redo runs whose folders hold other settings.")
def precision_cmd(seeds, n_synthetic, gan_set, name, overwrite):
    """Does bf16 train the CycleGAN as well as fp32? Trains it in both precisions for each seed,
    synthesises from each run, and tables the last losses, the synthesis metrics and the speed,
    with whether each bf16 mean lies within the fp32 seeds' range (runs/precision/<name>/table.md)."""
    from runkit.device import amp_dtype, pick_device

    amp_dtype(pick_device("auto"), "bf16")  # refuses a machine without native bf16, before any run
    path = run_precision_check(int_list(seeds, "--seeds"), PRECISION_ROOT / name, key_values(gan_set, "--gan-set"),
                               n_synthetic, overwrite, log=click.echo)
    click.echo(path.read_text(encoding="utf-8"))


@pipeline_cli.command("mitigations")
@click.option("--variants", default=",".join(AUGMENTATION_VARIANTS), show_default=True,
              help="Comma-separated mitigation variants to measure (each a set of classifier settings: "
                   + "; ".join(f"{k}: {v}" for k, v in MITIGATIONS.items()) + "). Variants with aug v2 need "
                   "`make synth`, with v3 `make counterfactual`; `make shortcut-proof` makes both and measures "
                   + ",".join(SHORTCUT_PROOF_VARIANTS) + ".")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per variant.")
@click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
              help="Classifier setting for every run [default: the demo's: epochs=8, image_size=96]; repeatable.")
@click.option("--name", default="demo", show_default=True, help="Folder under runs/mitigations/.")
@click.option("--overwrite", is_flag=True, help="Redo runs whose folders hold other settings.")
def mitigations_cmd(variants, seeds, classifier_set, name, overwrite):
    """Train v1 with each shortcut mitigation over seeds (plus a lungs-hidden control each) and
    tabulate out-of-source covid false positives, internal accuracy, within-source accuracy,
    border share and the control: runs/mitigations/<name>/table.md and results.json."""
    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in MITIGATIONS]
    if unknown:
        raise click.BadParameter(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(MITIGATIONS)}",
                                 param_hint="--variants")
    settings = key_values(classifier_set, "--set") if classifier_set else dict(DEMO["classifier"])
    run_mitigations(settings, int_list(seeds, "--seeds"), chosen, MITIGATIONS_ROOT / name, overwrite, log=click.echo)
    click.echo((MITIGATIONS_ROOT / name / "table.md").read_text(encoding="utf-8"))


@pipeline_cli.command("choose-v3")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per grid cell.")
@click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
              help="Classifier setting for every run [default: the demo's: epochs=8, image_size=96]; repeatable.")
@click.option("--name", default="shortcut-proof", show_default=True,
              help="Folder under runs/mitigations/ (the shortcut-proof table's runs are reused).")
@click.option("--overwrite", is_flag=True, help="Redo runs whose folders hold other settings.")
def choose_v3_cmd(seeds, classifier_set, name, overwrite):
    """Choose v3's images per label and the adversary's weight on the validation split: the grid
    of images per label × reversal weight over seeds, each scored by (val accuracy + val ieee8023
    covid-vs-pneumonia accuracy) / 2; ties go to the simpler cell. Needs `make counterfactual`.
    Writes runs/mitigations/<name>/choice.md and choice.json."""
    settings = key_values(classifier_set, "--set") if classifier_set else dict(DEMO["classifier"])
    result = run_choice(settings, int_list(seeds, "--seeds"), MITIGATIONS_ROOT / name, overwrite, log=click.echo)
    click.echo((MITIGATIONS_ROOT / name / "choice.md").read_text(encoding="utf-8"))
    click.echo(f"chosen: {result['chosen']} ({result['chosen_settings']})")


@pipeline_cli.command("gan-variants")
@click.option("--variants", default=",".join(GAN_VARIANTS), show_default=True,
              help="Comma-separated CycleGAN variants (" + "; ".join(f"{k}: {v}" for k, v in GAN_VARIANTS.items())
                   + ").")
@click.option("--seeds", default="0,1", show_default=True, help="Comma-separated GAN seeds per variant.")
@click.option("--profile", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True,
              help="CycleGAN settings the variants change.")
@click.option("--n", "n_synthetic", type=click.IntRange(min=1), default=100, show_default=True,
              help="Synthetic images per GAN (the same parents for every GAN).")
@click.option("--name", default="cpu", show_default=True, help="Folder under runs/gan-variants/.")
@click.option("--overwrite", is_flag=True, help="Redo runs whose folders hold other settings.")
def gan_variants_cmd(variants, seeds, profile, n_synthetic, name, overwrite):
    """Measure CycleGAN settings by the realism numbers: each variant over GAN seeds, N synthetic
    covid images each, Fréchet distance, precision, recall and checkerboard against the real
    floor, and the training time: runs/gan-variants/<name>/table.md and results.json."""
    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in GAN_VARIANTS]
    if unknown:
        raise click.BadParameter(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(GAN_VARIANTS)}",
                                 param_hint="--variants")
    run_gan_variants(chosen, int_list(seeds, "--seeds"), GAN_VARIANTS_ROOT / name, profile=profile, n=n_synthetic,
                     overwrite=overwrite, log=click.echo)
    click.echo((GAN_VARIANTS_ROOT / name / "table.md").read_text(encoding="utf-8"))


@pipeline_cli.command("counterfactual")
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
@click.option("--overwrite", is_flag=True, help="Replace an existing set (and a GAN run with other settings).")
def counterfactual_cmd(dataset, gan_run, gan_profile, gan_set, per_class, seed, out, overwrite):
    """The counterfactual set of --aug v3: a CycleGAN trained on non-covid training images to
    translate NIH ↔ the other sources (style, not disease) turns NIH normal and pneumonia
    training images into the other sources' style and covid training images into NIH style,
    labels kept, so that every class appears in every style."""
    make_counterfactual(dataset, out, gan_run=gan_run, gan_profile=gan_profile, gan=key_values(gan_set, "--gan-set"),
                        per_class=per_class, seed=seed, overwrite=overwrite, log=click.echo)
    click.echo(f"manifest: {out / 'manifest.csv'} (train with --aug v3)")


@pipeline_cli.command("gpu-check")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=runs_root("gpu-check"),
              show_default=True, help="Folder for gpu-check.json, gpu-check.md and the sample grid.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The folder `cxr pipeline gpu-check-data` made [gpu-check-data; --quick: a tiny one made on the spot].")
@click.option("--quick", is_flag=True, help="Every step at tiny sizes (CPU, CI): code paths, not speed.")
@click.option("--reference", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A checkout of the reference CycleGAN, timed beside ours (see `cxr pipeline bench --help`).")
def gpu_check_cmd(out, data, quick, reference):
    """Everything a GPU must show, bounded (under 8 minutes): the CUDA-only checks, CycleGAN speed at
    128/256 px in fp32 and bf16 up to the largest batch, a time-boxed paper-profile training run, the
    classifier backbones. On a GPU machine with nothing installed: python3 -m pipelines.perf.gpucheck run."""
    run_check(out, data, quick, reference, log=click.echo)
    click.echo(f"written: {out / 'gpu-check.json'}, {out / 'gpu-check.md'}")


@pipeline_cli.command("gpu-check-data")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=GPU_CHECK_DATA, show_default=True,
              help="The folder to write (replaced if it exists).")
def gpu_check_data_cmd(out):
    """The folder gpu-check reads: 100 training images per class and 10 val and test ones of cxr3,
    at 256 px, with a manifest whose root is the folder itself (under 40 MB; carry it to the GPU)."""
    folder = prepare_data(out)
    click.echo(f"{folder}: {len(list((folder / 'images').iterdir()))} images")


@pipeline_cli.command("progression")
@click.option("--patient", required=True, help="Patient id (e.g. ieee8023-178); images with a known day only.")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A trained classifier run folder (runs/classify/<name> or one inside runs/compare/).")
@click.option("--dataset", default="cxr3", show_default=True, help="Manifest to find the patient's images in.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output PNG [default: <run>/progression-<patient>.png].")
def progression_cmd(patient, run_dir, dataset, out):
    """One patient's images in time order with Grad-CAM overlays and predicted probabilities."""
    out = out or run_dir / f"progression-{patient}.png"
    shown = render(Manifest.read(manifest_path(dataset)), patient, run_dir, out)
    for image in shown["images"]:
        click.echo(f"day {image['offset_days']:>4}: true {image['true']:<9} predicted {image['predicted']}")
    click.echo(f"figure: {out}")


@pipeline_cli.command("bench")
@click.option("--quick", is_flag=True, help="Every code path at tiny sizes, in seconds (for CI), not a measurement.")
@click.option("--backbones", default=",".join(BACKBONES), show_default=True,
              help="Comma-separated classifier backbones to time.")
@click.option("--reference", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A checkout of the reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix, e.g. commit "
                   "2a7afba): its own train.py runs as a process beside ours at the same configurations (cpu "
                   "and paper architectures, 1 channel, batch 1; 64 and 128 px), ours, reference, ours, "
                   "reference, and the table gives both s/iter and the ratio. Nothing of it is imported. Where "
                   "'dominate' or 'wandb' are not installed, empty stand-ins are put on its PYTHONPATH "
                   "(--no_html, no --use_wandb: neither is called); for CPU timing CUDA is hidden from it "
                   "(that commit has no --gpu_ids and takes cuda:0 when it sees one).")
def bench_cmd(quick, backbones, reference):
    """Time the matmul ceiling, CycleGAN iterations (achieved GFLOP/s), classifier training,
    inference and Grad-CAM, data reading and a classifier epoch with and without the cache; print a
    table and write runs/bench/<timestamp>.json."""
    chosen = tuple(b for b in backbones.split(",") if b)
    unknown = sorted(set(chosen) - set(BACKBONES))
    if unknown:
        raise click.BadParameter(f"unknown backbone(s) {', '.join(unknown)}; choose from {', '.join(BACKBONES)}",
                                 param_hint="--backbones")
    run_bench(quick=quick, backbones=chosen, reference=reference, log=click.echo)


@pipeline_cli.command("reproduce")
@click.option("--paper", required=True, type=click.Choice(list(PROTOCOLS)),
              help="The paper whose protocol to run: zebin2020 (Zebin & Rezvy 2020), makris2020 (Makris et al. "
                   "2020) or luiz (Luiz et al.); each is one profile in pipelines/studies/reproduction/protocols.py.")
@click.option("--profile", type=click.Choice(list(REPRODUCTION_PROFILES)), default="cpu", show_default=True,
              help="cpu: EfficientNet-Lite0 with the ImageNet weights installed with the project, 128 px, each "
                   "paper's optimiser, batch and epochs (at most 60 min per paper on 2 cores); paper: the paper's "
                   "own backbone at 224 px (its ImageNet weights download once: internet; for a GPU).")
@click.option("--replicates", type=int, default=None,
              help="Seeds of the paper's random split, or the first CV folds run [default: 3; with --profile "
                   "paper every fold: 5 zebin2020, 10 luiz].")
@click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
              help="Override a classifier setting of the protocol, e.g. --set image_size=224; repeatable.")
@click.option("--gan-set", multiple=True, metavar="KEY=VALUE",
              help="zebin2020's v2: override a setting of its CycleGAN (the cpu profile), e.g. --gan-set "
                   "iterations=5000; repeatable.")
@click.option("--name", default=None,
              help="Folder under runs/reproduce/ [default: the paper, or <paper>-<profile> for paper].")
@click.option("--overwrite", is_flag=True, help="Redo steps whose folders hold runs with other settings.")
def reproduce_cmd(paper, profile, replicates, classifier_set, gan_set, name, overwrite):
    """Train each paper's model under its own protocol (data, per-image split, augmentation, frozen
    ImageNet body and new head, optimiser, epochs, model choice), then audit it: (a) patients grouped
    in the split, (b) lungs hidden, (c) adult NIH images of a source it never saw, and how many it
    calls covid. Writes runs/reproduce/<paper>/report.md and results.json (docs/reproduction.md)."""
    out = REPRODUCE_ROOT / name if name else None
    folder = run_reproduction(paper, profile, replicates=replicates, overrides=key_values(classifier_set, "--set"),
                              gan_overrides=key_values(gan_set, "--gan-set"), out_dir=out, overwrite=overwrite, log=click.echo)
    click.echo(f"report: {folder / 'report.md'}")


@pipeline_cli.command("choose-backbone")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per candidate.")
@click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of both candidates [default: the demo's classifier settings]; repeatable.")
@click.option("--overwrite", is_flag=True, help="Redo runs whose folders hold other settings.")
def choose_backbone_cmd(seeds, classifier_set, overwrite):
    """Should the cpu profile's classifier be EfficientNet-Lite0 (ImageNet, freeze then fine-tune) instead
    of resnet18 from scratch (it became the default by this study)? Trains both on cxr3 over the seeds and
    applies the rule written before the runs (docs/reproduction.md) to validation scores and training time:
    runs/choose-backbone/choice.md."""
    settings = key_values(classifier_set, "--set") if classifier_set else dict(DEMO["classifier"])
    result = run_backbone_choice(settings, int_list(seeds, "--seeds"), BACKBONE_CHOICE_ROOT, overwrite, log=click.echo)
    click.echo((BACKBONE_CHOICE_ROOT / "choice.md").read_text(encoding="utf-8"))
    click.echo(f"chosen: {result['chosen']}")
