"""``cxr study``: the measurements that chose a default, and the papers reproduced and audited."""
from __future__ import annotations

import click

from runkit.errors import OneLineErrors

from pipelines.experiment.demo import DEMO
from runkit.options import choices, int_list, key_values, overwrite_option, renamed_option
from pipelines.studies.backbone_choice import RUNS_ROOT as BACKBONE_CHOICE_ROOT, run_backbone_choice
from pipelines.studies.choice import run_choice
from pipelines.studies.lungs_only import run_lungs_only
from pipelines.studies.ganvariants import RUNS_ROOT as GAN_VARIANTS_ROOT, VARIANTS as GAN_VARIANTS, run_gan_variants
from pipelines.studies.mitigations import (AUGMENTATION_VARIANTS, RUNS_ROOT as MITIGATIONS_ROOT,
                                           SHORTCUT_PROOF_VARIANTS, VARIANTS as MITIGATIONS, run_mitigations)
from pipelines.studies.precision import RUNS_ROOT as PRECISION_ROOT, run_precision_check
from pipelines.studies.reproduction import PROFILES as REPRODUCTION_PROFILES, PROTOCOLS, run_reproduction
from pipelines.studies.reproduction.runner import RUNS_ROOT as REPRODUCE_ROOT


@click.group("study", cls=OneLineErrors)
def study_cli():
    """Studies that chose a default (mitigations, v3, GAN settings, precision, the classifier) and the
    papers reproduced and audited."""


@study_cli.command("mitigations")
@click.option("--variants", default=",".join(AUGMENTATION_VARIANTS), show_default=True,
              help="Comma-separated mitigation variants to measure (each a set of classifier settings: "
                   + "; ".join(f"{k}: {v}" for k, v in MITIGATIONS.items()) + "). Variants with aug v2 need "
                   "`make synth`, with v3 `make counterfactual`; `make shortcut-proof` makes both and measures "
                   + ",".join(SHORTCUT_PROOF_VARIANTS) + ".")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per variant.")
@click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
              help="Classifier setting for every run [default: the demo's: epochs=8, image_size=96]; repeatable.")
@click.option("--name", default="demo", show_default=True, help="Folder under runs/mitigations/.")
@overwrite_option()
def mitigations_cmd(variants, seeds, classifier_set, name, overwrite):
    """Train v1 with each shortcut mitigation over seeds (plus a lungs-hidden control each) and
    tabulate out-of-source covid false positives, internal accuracy, within-source accuracy,
    border share and the control: runs/mitigations/<name>/table.md and results.json."""
    chosen = choices(variants, MITIGATIONS, "--variants", "variant")
    settings = key_values(classifier_set, "--set") if classifier_set else dict(DEMO["classifier"])
    run_mitigations(settings, int_list(seeds, "--seeds"), chosen, MITIGATIONS_ROOT / name, overwrite, log=click.echo)
    click.echo((MITIGATIONS_ROOT / name / "table.md").read_text(encoding="utf-8"))


@study_cli.command("choose-v3")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per grid cell.")
@click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
              help="Classifier setting for every run [default: the demo's: epochs=8, image_size=96]; repeatable.")
@click.option("--name", default="shortcut-proof", show_default=True,
              help="Folder under runs/mitigations/ (the shortcut-proof table's runs are reused).")
@overwrite_option()
def choose_v3_cmd(seeds, classifier_set, name, overwrite):
    """Choose v3's images per label and the adversary's weight on the validation split: the grid
    of images per label × reversal weight over seeds, each scored by (val accuracy + val ieee8023
    covid-vs-pneumonia accuracy) / 2; ties go to the simpler cell. Needs `make counterfactual`.
    Writes runs/mitigations/<name>/choice.md and choice.json."""
    settings = key_values(classifier_set, "--set") if classifier_set else dict(DEMO["classifier"])
    result = run_choice(settings, int_list(seeds, "--seeds"), MITIGATIONS_ROOT / name, overwrite, log=click.echo)
    click.echo((MITIGATIONS_ROOT / name / "choice.md").read_text(encoding="utf-8"))
    click.echo(f"chosen: {result['chosen']} ({result['chosen_settings']})")


@study_cli.command("lungs-only")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per variant.")
@click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
              help="Classifier setting for every run [default: the demo's: epochs=8, image_size=96]; repeatable.")
@click.option("--name", default="lungs-only", show_default=True, help="Folder under runs/mitigations/.")
@overwrite_option()
def lungs_only_cmd(seeds, classifier_set, name, overwrite):
    """Whole image or lungs only? v1 both ways over seeds, decided on the validation split by the rule
    written before the runs (score = (val accuracy + val ieee8023 covid-vs-pneumonia accuracy) / 2;
    lungs only wins unless it loses more than a point), with the test and out-of-source numbers beside
    it: runs/mitigations/<name>/choice.md and choice.json."""
    settings = key_values(classifier_set, "--set") if classifier_set else dict(DEMO["classifier"])
    result = run_lungs_only(settings, int_list(seeds, "--seeds"), MITIGATIONS_ROOT / name, overwrite, log=click.echo)
    click.echo((MITIGATIONS_ROOT / name / "choice.md").read_text(encoding="utf-8"))
    click.echo(f"chosen: {result['chosen']} ({result['chosen_settings']})")


@study_cli.command("gan-variants")
@click.option("--variants", default=",".join(GAN_VARIANTS), show_default=True,
              help="Comma-separated CycleGAN variants (" + "; ".join(f"{k}: {v}" for k, v in GAN_VARIANTS.items())
                   + ").")
@click.option("--seeds", default="0,1", show_default=True, help="Comma-separated GAN seeds per variant.")
@renamed_option("--gan-profile", "profile", old=("--profile",), type=click.Choice(["cpu", "paper"]), default="cpu",
                show_default=True, help="CycleGAN settings the variants change.")
@click.option("--n", "n_synthetic", type=click.IntRange(min=1), default=100, show_default=True,
              help="Synthetic images per GAN (the same parents for every GAN).")
@click.option("--name", default="cpu", show_default=True, help="Folder under runs/gan-variants/.")
@overwrite_option()
def gan_variants_cmd(variants, seeds, profile, n_synthetic, name, overwrite):
    """Measure CycleGAN settings by the realism numbers: each variant over GAN seeds, N synthetic
    covid images each, Fréchet distance, precision, recall and checkerboard against the real
    floor, and the training time: runs/gan-variants/<name>/table.md and results.json."""
    chosen = choices(variants, GAN_VARIANTS, "--variants", "variant")
    run_gan_variants(chosen, int_list(seeds, "--seeds"), GAN_VARIANTS_ROOT / name, profile=profile, n=n_synthetic,
                     overwrite=overwrite, log=click.echo)
    click.echo((GAN_VARIANTS_ROOT / name / "table.md").read_text(encoding="utf-8"))


@study_cli.command("precision")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per precision.")
@click.option("--n", "n_synthetic", type=click.IntRange(min=1), default=100, show_default=True,
              help="Images each run synthesises for the synthesis metrics.")
@click.option("--gan-set", multiple=True, metavar="KEY=VALUE",
              help="Override a CycleGAN setting of every run (default: the CPU profile); repeatable.")
@click.option("--name", default="cpu", show_default=True, help="Folder under runs/precision/.")
@overwrite_option()
def precision_cmd(seeds, n_synthetic, gan_set, name, overwrite):
    """Does bf16 train the CycleGAN as well as fp32? Trains it in both precisions for each seed,
    synthesises from each run, and tables the last losses, the synthesis metrics and the speed,
    with whether each bf16 mean lies within the fp32 seeds' range (runs/precision/<name>/table.md)."""
    from runkit.device import amp_dtype, pick_device

    amp_dtype(pick_device("auto"), "bf16")  # refuses a machine without native bf16, before any run
    path = run_precision_check(int_list(seeds, "--seeds"), PRECISION_ROOT / name, key_values(gan_set, "--gan-set"),
                               n_synthetic, overwrite, log=click.echo)
    click.echo(path.read_text(encoding="utf-8"))


@study_cli.command("choose-backbone")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds per candidate.")
@click.option("--set", "classifier_set", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of both candidates [default: the demo's classifier settings]; repeatable.")
@overwrite_option()
def choose_backbone_cmd(seeds, classifier_set, overwrite):
    """Should the cpu profile's classifier be EfficientNet-Lite0 (ImageNet, freeze then fine-tune) instead
    of resnet18 from scratch (it became the default by this study)? Trains both on cxr3 over the seeds and
    applies the rule written before the runs (docs/reproduction.md) to validation scores and training time:
    runs/choose-backbone/choice.md."""
    settings = key_values(classifier_set, "--set") if classifier_set else dict(DEMO["classifier"])
    result = run_backbone_choice(settings, int_list(seeds, "--seeds"), BACKBONE_CHOICE_ROOT, overwrite, log=click.echo)
    click.echo((BACKBONE_CHOICE_ROOT / "choice.md").read_text(encoding="utf-8"))
    click.echo(f"chosen: {result['chosen']}")


@study_cli.command("reproduce")
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
@click.option("--lung-gan", is_flag=True,
              help="zebin2020: also v2-lungs, v2 with covid images from a lungs-region CycleGAN (same settings, "
                   "same training part) that changes only each normal parent's lungs.")
@click.option("--name", default=None,
              help="Folder under runs/reproduce/ [default: the paper, or <paper>-<profile> for paper].")
@overwrite_option()
def reproduce_cmd(paper, profile, replicates, classifier_set, gan_set, lung_gan, name, overwrite):
    """Train each paper's model under its own protocol (data, per-image split, augmentation, frozen
    ImageNet body and new head, optimiser, epochs, model choice), then audit it: (a) patients grouped
    in the split, (b) the lung controls (first replicate: lungs removed, lungs only, outline only, and
    the central box), (c) NIH hospital images of a source it never saw, and how many it calls covid.
    Writes runs/reproduce/<paper>/report.md and results.json (docs/reproduction.md)."""
    out = REPRODUCE_ROOT / name if name else None
    folder = run_reproduction(paper, profile, replicates=replicates, overrides=key_values(classifier_set, "--set"),
                              gan_overrides=key_values(gan_set, "--gan-set"), lung_gan=lung_gan, out_dir=out,
                              overwrite=overwrite,
                              log=click.echo)
    click.echo(f"report: {folder / 'report.md'}")
