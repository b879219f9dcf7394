"""The experiment: train v1 and v2 classifiers on the same split with the same seeds, and
measure the v2 − v1 difference with its uncertainty.

Replicates are seeds on the manifest's own split, or grouped k-fold parts (``folds``). Each
replicate's synthetic images come from a GAN trained on that replicate's training split only:
one GAN for a fixed split, one per fold for k-fold (a fold's test patients must never reach
its GAN). Every step is reused when it already finished with the same settings.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from classifier.config import make_config
from classifier.training.train import train_classifier
from cxrdata.manifest import Manifest, manifest_path
from cyclegan.config import from_profile
from cyclegan.train import train as train_gan
from runkit import distributed
from runkit.device import pick_device
from runkit.rundir import read_json, read_settings, runs_root, write_json

from pipelines.experiment.controls import controls_for
from pipelines.experiment.counterfactual import make_counterfactual
from cxrdata.folds import kfold_manifests, write_folds
from pipelines.experiment.report import write_report
from pipelines.experiment.steps import ensure, ensure_synthesis, same_settings

RUNS_ROOT = runs_root("compare")


class CompareError(ValueError):
    """Conflicting or impossible experiment settings; the message names the option."""


@dataclass
class CompareConfig:
    """Everything the experiment depends on (saved as the run's config.json)."""

    dataset: str = "cxr3"
    n_synthetic: int = 100
    seeds: tuple[int, ...] = (0, 1, 2)
    folds: int = 0  # 0: the manifest's own split, repeated over seeds; k: grouped k-fold
    classifier_profile: str = "cpu"
    classifier: dict = field(default_factory=dict)  # overrides of the classifier profile
    gan_profile: str = "cpu"
    gan: dict = field(default_factory=dict)  # overrides of the GAN profile
    gan_run: str | None = None  # reuse this trained GAN (fixed split only)
    synth_seed: int = 0
    lung_controls: bool = True  # v1 retrained on parts of each image (pipelines.experiment.controls)
    sweep: tuple[int, ...] = ()  # further synthetic-image counts to train v2 with
    holdout_source: str | None = None  # leave this source out of every split; its images test out of source
    counterfactual: bool = False  # also v3 and v2+v3: counterfactual source translations (experiment.counterfactual)
    lung_gan: bool = False  # also v2-lungs: covid made by a lungs-region CycleGAN (parents kept outside the lungs)

    def __post_init__(self):
        self.seeds, self.sweep = tuple(self.seeds), tuple(self.sweep)
        self.validate()

    def validate(self) -> None:
        try:  # everything passed down is checked now, not after the CycleGAN has trained
            classifier = make_config(self.classifier_profile, **self.classifier)
            gan = from_profile(self.gan_profile, **self.gan)
            pick_device(classifier.device)
            pick_device(gan.device)
        except ValueError as exc:
            raise CompareError(f"{exc} (checked before any step runs)") from None
        if self.holdout_source is not None:
            sources = {r.source for r in Manifest.read(manifest_path(self.dataset))}
            if self.holdout_source not in sources:
                raise CompareError(f"holdout_source {self.holdout_source!r}: not a source of {self.dataset}; "
                                   f"choose one of {', '.join(sorted(sources))}")
        if self.n_synthetic <= 0:
            raise CompareError(f"n_synthetic {self.n_synthetic}: the number of synthetic images must be positive")
        if not self.seeds:
            raise CompareError("seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise CompareError(f"seeds {','.join(map(str, self.seeds))}: seeds repeat")
        if self.counterfactual and distributed.world_from_env().size > 1:
            raise CompareError("counterfactual runs on one process for now (its synthesis is not split across "
                               "torchrun ranks); run one process or leave counterfactual off")
        if any(n < 0 for n in self.sweep):
            raise CompareError(f"sweep {','.join(map(str, self.sweep))}: counts must be >= 0")
        if self.folds:
            if Path(self.dataset).stem == "makris2020":
                raise CompareError("folds with dataset makris2020: that dataset is a published, fixed "
                                   "train/test split and k-fold would discard it; use folds 0 or dataset cxr3")
            if self.gan_run:
                raise CompareError("folds with gan_run: each fold needs a GAN trained on its own training "
                                   "split only, so one given GAN run cannot serve; leave gan_run empty")
            if len(self.seeds) > 1:
                raise CompareError("folds with several seeds: folds are the replicates; give one seed")

    @property
    def synthetic_counts(self) -> list[int]:
        return sorted({self.n_synthetic, *(n for n in self.sweep if n > 0)})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Replicate:
    """One v1/v2 pair: a manifest (the split) and a seed, with its GAN and synthesis."""

    name: str
    manifest: str
    seed: int
    gan_run: Path | None = None
    synthetic: Path | None = None  # the synthesis folder (manifest.csv inside)
    counterfactual: Path | None = None  # the v3 set's folder (its source-translation GAN beside it)
    # "v1", "v2", "v2-n50", "v3", "v2+v3", "v2-lungs", "v1-<lung control>"
    runs: dict[str, Path] = field(default_factory=dict)

    @property
    def lung_gan_run(self) -> Path:
        """The lungs-region CycleGAN of this replicate's split (beside its full-image one)."""
        return self.synthetic.parent / self.synthetic.name.replace("synthetic", "gan-lungs")

    @property
    def lung_synthetic(self) -> Path:
        return self.synthetic.parent / self.synthetic.name.replace("synthetic", "synthetic-lungs")


def run_compare(config: CompareConfig, out_dir: Path | str | None = None, *, overwrite: bool = False,
                progress: bool = True, log=print) -> Path:
    """Run (or reuse) every step of the experiment and write ``report.json`` and ``report.md``."""
    out_dir = Path(out_dir) if out_dir is not None else RUNS_ROOT / default_name(config)
    with distributed.session() as (world, _):  # under torchrun: one process group for every step
        if not world.is_main:  # rank 0 reports, writes and synthesises; every rank trains
            log, progress = (lambda *args: None), False

        def prepare() -> list[Replicate]:
            out_dir.mkdir(parents=True, exist_ok=True)
            _check_or_write_config(out_dir, config, overwrite)
            return plan(config, out_dir)

        replicates = distributed.on_main(world, prepare)
        steps = tqdm(replicates, desc="replicates", unit="replicate", disable=not progress)
        for replicate in steps:
            steps.set_postfix_str(replicate.name)
            _gan_and_synthesis(config, replicate, out_dir, overwrite, progress, log)
            if config.lung_gan:
                _lung_gan_and_synthesis(config, replicate, overwrite, progress, log)
            if config.counterfactual:
                make_counterfactual(replicate.manifest, replicate.counterfactual, gan_run=_source_gan(replicate),
                                    gan_profile=config.gan_profile, gan=config.gan, overwrite=overwrite,
                                    progress=progress, log=log)
            _classifiers(config, replicate, out_dir, overwrite, progress, log)
        if config.lung_controls:
            _lung_controls(config, replicates[0], out_dir, overwrite, progress, log)

        def report() -> Path:
            write_json(out_dir / "replicates.json", [_describe(r) for r in replicates])
            return write_report(config, replicates, out_dir)

        return distributed.on_main(world, report)


def default_name(config: CompareConfig) -> str:
    split = f"{config.folds}fold" if config.folds else f"{len(config.seeds)}seeds"
    backbone = config.classifier.get("backbone") or make_config(config.classifier_profile).backbone
    holdout = f"-without-{config.holdout_source}" if config.holdout_source else ""
    return f"{Path(config.dataset).stem}{holdout}-n{config.n_synthetic}-{backbone}-{split}"


def plan(config: CompareConfig, out_dir: Path) -> list[Replicate]:
    """The replicates: seeds on the fixed split, or one per fold (fold manifests written)."""
    dataset = _holdout_manifest(config, out_dir) if config.holdout_source else config.dataset
    if not config.folds:
        gan_run = Path(config.gan_run) if config.gan_run else out_dir / "gan"
        return [Replicate(f"seed{s}", dataset, s, gan_run, out_dir / "synthetic", out_dir / "counterfactual")
                for s in config.seeds]
    base = Manifest.read(manifest_path(dataset))
    try:
        folds = kfold_manifests(base, config.folds, config.seeds[0])
    except ValueError as exc:
        raise CompareError(str(exc)) from None
    paths = write_folds(folds, out_dir / "folds")
    return [Replicate(f"fold{i}", str(path), config.seeds[0], out_dir / f"gan-fold{i}",
                      out_dir / f"synthetic-fold{i}", out_dir / f"counterfactual-fold{i}")
            for i, path in enumerate(paths)]


def _source_gan(replicate: Replicate) -> Path:
    """The source-translation GAN of a replicate's counterfactual set: trained on its training split only."""
    return replicate.counterfactual.parent / f"gan-source{replicate.counterfactual.name.removeprefix('counterfactual')}"


def _holdout_manifest(config: CompareConfig, out_dir: Path) -> str:
    """The dataset without ``holdout_source`` (written beside the experiment): nothing of that
    source is trained, validated or tested on, so every classifier's out-of-source check meets
    all of its images."""
    base = Manifest.read(manifest_path(config.dataset))
    kept = Manifest([r for r in base if r.source != config.holdout_source],
                    name=f"{Path(config.dataset).stem}-without-{config.holdout_source}")
    path = out_dir / f"{kept.name}.csv"
    kept.write(path, base.extra_columns)
    return str(path)


def _check_or_write_config(out_dir: Path, config: CompareConfig, overwrite: bool) -> None:
    path = out_dir / "config.json"
    # a setting added since the experiment ran reads as its default (what that experiment did)
    defaults = {f.name: f.default for f in dataclasses.fields(CompareConfig) if f.default is not dataclasses.MISSING}
    if path.is_file() and not overwrite and not same_settings({**defaults, **read_json(path)}, config.to_dict()):
        raise CompareError(f"{out_dir} holds an experiment with other settings; pass --overwrite to redo "
                           "it, or choose another --name")
    write_json(path, config.to_dict())


def _gan_and_synthesis(config, replicate: Replicate, out_dir, overwrite, progress, log) -> None:
    if not (config.gan_run and not config.folds):
        gan_config = from_profile(config.gan_profile, **{**config.gan, "dataset": replicate.manifest})
        _, how = ensure(replicate.gan_run, gan_config.to_dict(),
                        lambda d, **kw: train_gan(gan_config, d, progress=progress, **kw), overwrite=overwrite)
        log(f"GAN {replicate.gan_run}: {how}")
    elif not (replicate.gan_run / "checkpoint.pt").is_file():
        raise CompareError(f"gan_run {replicate.gan_run}: no checkpoint.pt there; train one with "
                           "`cxr gan train` or leave gan_run empty to train one here")
    _check_gan_split(replicate)
    distributed.on_main(distributed.world_from_env(),
                        lambda: _ensure_synthesis(config, replicate, overwrite, progress, log))


def _lung_gan_and_synthesis(config, replicate: Replicate, overwrite, progress, log) -> None:
    """The lungs-region CycleGAN of the replicate's training split (the same profile and settings as
    the full-image one) and its synthesis, with the same count and parent seed."""
    gan_config = from_profile(config.gan_profile, **{**config.gan, "dataset": replicate.manifest, "region": "lungs"})
    _, how = ensure(replicate.lung_gan_run, gan_config.to_dict(),
                    lambda d, **kw: train_gan(gan_config, d, progress=progress, **kw), overwrite=overwrite)
    log(f"lungs-region GAN {replicate.lung_gan_run}: {how}")
    _check_gan_split(replicate, replicate.lung_gan_run)

    def synthesis() -> None:
        how = ensure_synthesis(replicate.lung_gan_run, replicate.lung_synthetic, config.n_synthetic, config.synth_seed,
                               overwrite=overwrite, progress=progress)
        made = "reused" if how == "reused" else f"{config.n_synthetic} images"
        log(f"synthesis {replicate.lung_synthetic}: {made}")

    distributed.on_main(distributed.world_from_env(), synthesis)


def _check_gan_split(replicate: Replicate, gan_run: Path | None = None) -> None:
    """The GAN must have learned from this replicate's training split only."""
    gan_run = gan_run or replicate.gan_run
    gan_manifest = read_settings(gan_run / "config.json")["dataset"]
    if manifest_path(gan_manifest).resolve() != manifest_path(replicate.manifest).resolve():
        raise CompareError(f"gan_run {gan_run} was trained on {gan_manifest!r} but the "
                           f"experiment uses {replicate.manifest!r}: its images may include this "
                           "experiment's test patients; train a GAN on the same dataset")


def _ensure_synthesis(config, replicate: Replicate, overwrite, progress, log) -> None:
    """Synthesise the largest count once; smaller counts are its first rows (a seeded draw)."""
    n = max(config.synthetic_counts)
    how = ensure_synthesis(replicate.gan_run, replicate.synthetic, n, config.synth_seed, overwrite=overwrite,
                           progress=progress)
    log(f"synthesis {replicate.synthetic}: " + ("reused" if how == "reused" else f"{n} images"))


def synthetic_subset(replicate: Replicate, n: int) -> Path:
    """A manifest of the first ``n`` synthetic images (absolute paths), beside the synthesis."""
    full = replicate.synthetic / "manifest.csv"
    synthetic = Manifest.read(full, root=full.parent)
    if n >= len(synthetic):
        return full
    subset = Manifest([dataclasses.replace(r, path=str(r.file)) for r in synthetic.records[:n]],
                      name=f"synthetic-n{n}")
    path = replicate.synthetic.parent / f"{replicate.synthetic.name}-n{n}.csv"
    subset.write(path, extra_columns=synthetic.extra_columns)
    return path


def _classifier_run(config, replicate, out_dir, name, overwrite, progress, log, **settings) -> Path:
    classifier_config = make_config(config.classifier_profile, **{**config.classifier, **settings,
                                                                    "dataset": replicate.manifest,
                                                                    "seed": replicate.seed})
    run_dir = out_dir / "classify" / f"{replicate.name}-{name}"
    _, how = ensure(run_dir, classifier_config.to_dict(),
                    lambda d, **kw: train_classifier(classifier_config, d, progress=progress, **kw),
                    overwrite=overwrite)
    log(f"classifier {run_dir}: {how}")
    replicate.runs[name] = run_dir
    return run_dir


def _classifiers(config, replicate: Replicate, out_dir, overwrite, progress, log) -> None:
    _classifier_run(config, replicate, out_dir, "v1", overwrite, progress, log, aug="v1")
    for n in config.synthetic_counts:
        name = "v2" if n == config.n_synthetic else f"v2-n{n}"
        subset = distributed.on_main(distributed.world_from_env(), lambda: synthetic_subset(replicate, n))
        _classifier_run(config, replicate, out_dir, name, overwrite, progress, log, aug="v2",
                        synth_manifest=str(subset))
    if config.lung_gan:
        _classifier_run(config, replicate, out_dir, "v2-lungs", overwrite, progress, log, aug="v2",
                        synth_manifest=str(replicate.lung_synthetic / "manifest.csv"))
    if config.counterfactual:
        counterfactual = str(replicate.counterfactual / "manifest.csv")
        _classifier_run(config, replicate, out_dir, "v3", overwrite, progress, log, aug="v3",
                        counterfactual_manifest=counterfactual)
        _classifier_run(config, replicate, out_dir, "v2+v3", overwrite, progress, log, aug="v2+v3",
                        synth_manifest=str(synthetic_subset(replicate, config.n_synthetic)),
                        counterfactual_manifest=counterfactual)


def _lung_controls(config, replicate: Replicate, out_dir, overwrite, progress, log) -> None:
    region = make_config(config.classifier_profile, **config.classifier).region
    for name, (settings, _) in controls_for(region).items():
        _classifier_run(config, replicate, out_dir, f"v1-{name}", overwrite, progress, log, aug="v1", **settings)


def _describe(replicate: Replicate) -> dict:
    return {"name": replicate.name, "manifest": replicate.manifest, "seed": replicate.seed,
            "gan_run": str(replicate.gan_run), "synthetic": str(replicate.synthetic),
            "counterfactual": str(replicate.counterfactual) if replicate.runs.get("v3") else None,
            "lung_synthetic": str(replicate.lung_synthetic) if replicate.runs.get("v2-lungs") else None,
            "runs": {k: str(v) for k, v in replicate.runs.items()}}
