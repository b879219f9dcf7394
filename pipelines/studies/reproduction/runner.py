"""Run one paper's reproduction: per replicate the protocol's model and its three audits, then
the report. Every step reuses a finished run with the same settings and resumes an unfinished one."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from classifier.config import make_config
from classifier.evaluation.evaluate_external import evaluate_run
from classifier.model.backbones import build_model
from classifier.training.train import train_classifier
from cxrdata.manifest import Manifest
from cyclegan.config import from_profile
from cyclegan.synth import implausible_lungs
from cyclegan.train import train as train_gan
from runkit.rundir import is_finished, read_json, runs_root
from runkit.timing import peak_rss_mib

from classifier.evaluation.progression import render
from pipelines.experiment.controls import controls_for
from pipelines.experiment.steps import ensure, ensure_synthesis, ensure_timed
from pipelines.studies.reproduction import splits
from pipelines.studies.reproduction.protocols import PROFILES, PROTOCOLS, Protocol
from pipelines.studies.reproduction.report import write_report

RUNS_ROOT = runs_root("reproduce")
TIMES = "times.json"  # in runs/: each run's training seconds, recorded when it ran


class ReproductionError(ValueError):
    """An unknown paper, profile or setting; the message lists the known ones."""


def protocol_of(paper: str) -> Protocol:
    if paper not in PROTOCOLS:
        raise ReproductionError(f"unknown paper {paper!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[paper]


def replicate_count(protocol: Protocol, profile: str) -> int:
    """The cpu profile's replicates; the paper profile runs every CV fold."""
    return protocol.cv_replicates if profile == "paper" and protocol.folds else protocol.replicates


def classifier_settings(protocol: Protocol, profile: str, overrides: dict) -> dict:
    if profile not in PROFILES:
        raise ReproductionError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return {**protocol.classifier, **PROFILES[profile], **overrides}


def run_reproduction(paper: str, profile: str = "cpu", *, replicates: int | None = None, overrides: dict | None = None,
                     gan_overrides: dict | None = None, lung_gan: bool = False, out_dir: Path | str | None = None,
                     overwrite: bool = False, progress: bool = True, log=print) -> Path:
    """Reproduce ``paper`` under ``profile`` into ``out_dir`` (default ``runs/reproduce/<paper>``
    for cpu, ``<paper>-<profile>`` otherwise); returns the folder with report.md and results.json.
    ``overrides`` change the protocol's classifier settings, ``gan_overrides`` v2's CycleGAN's;
    ``lung_gan`` adds v2-lungs, v2 with a lungs-region CycleGAN's images (a paper with a v2 only)."""
    protocol = protocol_of(paper)
    if lung_gan and not protocol.synthetic:
        raise ReproductionError(f"--lung-gan: {paper}'s protocol has no v2 (no synthetic images) to set it beside")
    settings = classifier_settings(protocol, profile, overrides or {})
    config = make_config(**settings)  # a bad setting, or weights that cannot be had, fail before any work
    build_model(config.backbone, config.weights, head=config.head)
    count = replicates or replicate_count(protocol, profile)
    limit = protocol.cv_replicates or count
    if not 1 <= count <= limit:
        raise ReproductionError(f"--replicates {count}: {paper} has 1 to {limit}")
    out = Path(out_dir) if out_dir else RUNS_ROOT / (paper if profile == "cpu" else f"{paper}-{profile}")
    images = splits.pool(protocol.pool)
    started = time.perf_counter()
    synthetic = (_synthesis(protocol, images, out, gan_overrides or {}, overwrite, progress, log)
                 if protocol.synthetic else None)
    lung_synthetic = (_synthesis(protocol, images, out, gan_overrides or {}, overwrite, progress, log, region="lungs")
                      if lung_gan else None)
    replicates_done = []
    for k in range(count):
        own = splits.protocol_split(protocol, images, k)
        grouped = splits.grouped_split(protocol, images, k)
        own_csv = splits.write(own, out / "splits" / f"{own.name}.csv")
        grouped_csv = splits.write(grouped, out / "splits" / f"{grouped.name}.csv")
        runs = {"protocol": _train(out / "runs" / f"r{k}-protocol", settings, own_csv, k, overwrite, progress, log),
                "grouped": _train(out / "runs" / f"r{k}-grouped", settings, grouped_csv, k, overwrite, progress, log)}
        if k == 0:  # the lung controls, on the first replicate (as in the experiment): one run each
            runs.update({name: _train(out / "runs" / f"r{k}-{name}", {**settings, **control}, own_csv, k, overwrite,
                                      progress, log) for name, (control, _) in controls_for("full").items()})
        if synthetic is not None:
            subset = _synthetic_for(own, synthetic, protocol.synthetic, out / "splits" / f"{own.name}-synthetic.csv")
            runs["v2"] = _train(out / "runs" / f"r{k}-v2", {**settings, "aug": "v2", "synth_manifest": subset},
                                own_csv, k, overwrite, progress, log)
        if lung_synthetic is not None:
            subset = _synthetic_for(own, lung_synthetic, protocol.synthetic,
                                    out / "splits" / f"{own.name}-synthetic-lungs.csv")
            runs["v2-lungs"] = _train(out / "runs" / f"r{k}-v2-lungs", {**settings, "aug": "v2",
                                                                          "synth_manifest": subset},
                                      own_csv, k, overwrite, progress, log)
        if protocol.second_test:
            runs["second-test"] = _second_test(protocol, runs["protocol"], out, overwrite, progress)
        replicates_done.append({"replicate": k, "split": own_csv, "grouped_split": grouped_csv,
                                "patients_on_both_sides": splits.patients_on_both_sides(own),
                                "runs": {name: str(path) for name, path in runs.items()}})
    progression = _progression(protocol, images, Path(replicates_done[0]["runs"]["protocol"]), out)
    times = read_json(out / "runs" / TIMES) if (out / "runs" / TIMES).is_file() else {}
    trained = [times.get(Path(path).name) for r in replicates_done for name, path in r["runs"].items()
               if name != "second-test"]
    cost = {"seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib(),
            "training_seconds": sum(trained) if trained and None not in trained else None}
    write_report(out, protocol, profile, settings, replicates_done, progression, cost)
    return out


def _train(run_dir: Path, settings: dict, dataset: str, seed: int, overwrite: bool, progress: bool, log) -> Path:
    config = make_config(**{**settings, "dataset": dataset, "seed": seed})

    def run(folder: Path, **kw) -> Path:
        return train_classifier(config, folder, progress=progress, **kw)

    _, how = ensure_timed(run_dir, config.to_dict(), run, run_dir.parent / TIMES, overwrite=overwrite)
    log(f"{run_dir}: {how}")
    return run_dir


def _synthesis(protocol: Protocol, images: Manifest, out: Path, gan_overrides: dict, overwrite: bool, progress: bool,
               log, region: str = "full") -> Path:
    """v2's CycleGAN (normal → covid) on the training part of the split, and one image per training
    normal (in the lungs region: per training normal with plausible lungs)."""
    part = splits.holdout_split(protocol, images, 0)  # the split every fold is carved from
    gan_manifest = splits.write(part, out / "splits" / f"{protocol.paper}-gan.csv")
    gan_config = from_profile("cpu", **{**gan_overrides, "dataset": gan_manifest, "region": region})
    suffix = "" if region == "full" else f"-{region}"
    gan_run, how = ensure(out / f"gan{suffix}", gan_config.to_dict(),
                          lambda folder, **kw: train_gan(gan_config, folder, progress=progress, **kw),
                          overwrite=overwrite)
    log(f"{gan_run}: {how}")
    normals = Manifest([r for r in part if r.split == "train" and r.label == "normal"], name="training normals")
    parents = len(normals) - (len(implausible_lungs(normals, progress)) if region == "lungs" else 0)
    ensure_synthesis(gan_run, out / f"synthetic{suffix}", parents, 0, overwrite=overwrite, progress=progress)
    return out / f"synthetic{suffix}" / "manifest.csv"


def _synthetic_for(split: Manifest, synthetic_csv: Path, n: int, path: Path) -> str:
    """The first ``n`` synthetic images whose parent patients are in ``split``'s training part only."""
    held_out = {r.patient_id for r in split if r.split != "train"}
    synthetic = Manifest.read(synthetic_csv, root=synthetic_csv.parent)
    kept = [dataclasses.replace(r, path=str(r.file)) for r in synthetic if r.patient_id not in held_out][:n]
    Manifest(kept, name=path.stem).write(path, extra_columns=synthetic.extra_columns)
    return str(path)


def _second_test(protocol: Protocol, run: Path, out: Path, overwrite: bool, progress: bool) -> Path:
    """The protocol's model on the paper's second test set (Makris: the repository's test/ folder)."""
    data = splits.write(splits.pool(protocol.second_test), out / "splits" / f"{protocol.second_test}.csv")
    target = out / "runs" / f"{run.name}-on-{protocol.second_test}"
    if not is_finished(target) or overwrite:
        evaluate_run(run, data, target, overwrite=True, progress=progress)
    return target


def _progression(protocol: Protocol, images: Manifest, run: Path, out: Path) -> dict | None:
    """Zebin's Fig. 8: the progression patient's images with Grad-CAM, when the patient is in the pool."""
    if not protocol.progression_patient or not any(r.patient_id == protocol.progression_patient for r in images):
        return None
    return render(splits.corpus(), protocol.progression_patient, run, out / "progression.png")
