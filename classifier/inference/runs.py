"""A finished classifier run (or an export of one) loaded for use: its settings, its classes, what it
scored and its best model. Evaluation, prediction, serving, export and figures all start here."""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from cxrdata import CLASSES
from cxrdata.manifest import manifest_dir, manifest_path, patients_by_sha256
from runkit import checkpoint
from runkit.rundir import CONFIG, FINISHED, RUNTIME, check_not_locked, is_finished, read_json

from classifier.model.backbones import build_model, CXRClassifier

from classifier.model.checkpoints import model_from_checkpoint
from classifier.model.weights import describe_weights


class RunNotUsableError(ValueError):
    """RUN is not a classifier run, or has not finished; the message says what to pass."""


def is_export(folder: Path | str) -> bool:
    """True for a folder made by ``cxr classify export`` with its weights (model.safetensors)."""
    folder = Path(folder)
    return (folder / "model.safetensors").is_file() and "exported_from" in read_json(folder / CONFIG)


def run_config(run_dir: Path | str, allow_unfinished: bool = False) -> dict:
    """The settings of a classifier run, refusing another kind of folder or an unfinished run."""
    run_dir = Path(run_dir)
    config_file = run_dir / CONFIG
    config = read_json(config_file) if config_file.is_file() else {}
    if is_export(run_dir):
        return config  # an export (`cxr classify export`) is made of finished runs only
    if "backbone" not in config or not (run_dir / "best.pt").is_file():
        raise RunNotUsableError(f"{run_dir}: not a classifier run (no config.json with a backbone and best.pt "
                                "there); pass a folder made by `cxr classify train`, e.g. "
                                "runs/classify/cxr3-v1-efficientnet_lite0")
    if not is_finished(run_dir) and not allow_unfinished:
        raise RunNotUsableError(f"{run_dir}: the run has not finished (no {FINISHED}); its best.pt may be "
                                "from an early epoch. Finish it with `cxr classify train --resume`, or pass "
                                "--allow-unfinished")
    if not is_finished(run_dir):
        check_not_locked(run_dir)  # unfinished and still training: its files change under us
    return config


def known_patients(config: dict) -> dict[str, str]:
    """Image sha256 → patient over the run's dataset and the project's manifests: a file among them
    is segmented by the fold model its patient's images get, so it sees the mask its split saw."""
    return patients_by_sha256([manifest_path(config["dataset"]), *sorted(manifest_dir().glob("*.csv"))])


def model_summary(run_dir: Path | str, config: dict) -> dict:
    """What a run's model is, and how it scored on its own test split and on the corpus images from
    sources it did not train on (from its ``metrics.json``, when present)."""
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    test = metrics.get("test", {})
    cross_source = metrics.get("cross_source")  # a sentence instead of a table when it was skipped
    false_positive = (cross_source.get("covid_false_positive") if isinstance(cross_source, dict) else None) or {}
    return {"run": str(run_dir), "name": run_dir.resolve().name, "backbone": config["backbone"],
            "dataset": config["dataset"], "aug": config["aug"], "image_size": config["image_size"],
            "classes": trained_classes(run_dir),
            "own_test_accuracy": test.get("accuracy"), "own_test_n": test.get("n"),
            "out_of_source_covid_false_positive": ({"rate": false_positive["rate"], "n": false_positive["n"]}
                                                   if false_positive.get("n") else None)}


def trained_classes(run_dir: Path | str) -> list[str]:
    """The classes a run trained on, in :data:`CLASSES` order (all of them when its
    ``train_images.csv`` is missing): a two-class dataset's model speaks of those two."""
    path = Path(run_dir) / "train_images.csv"
    if not path.is_file():
        return list(CLASSES)
    with open(path, newline="", encoding="utf-8") as fh:
        seen = {row["label"] for row in csv.DictReader(fh)}
    return [c for c in CLASSES if c in seen]


def load_exported(folder: Path, config: dict) -> CXRClassifier:
    """The model of an exported folder, from ``model.safetensors`` and ``config.json``."""
    from safetensors.torch import load_file

    model = build_model(config["backbone"], "none", bool(config.get("hide_lungs")), bool(config.get("equalize")),
                        config.get("head", "linear"), config.get("region", "full"))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model


def load_run_model(run_dir: Path | str, device: torch.device) -> tuple[CXRClassifier, int]:
    """The best model of a run (or of an exported folder) and the image size it was trained at."""
    if is_export(run_dir):
        config = read_json(Path(run_dir) / CONFIG)
        return load_exported(Path(run_dir), config).placed(device).eval(), int(config["image_size"])
    path = Path(run_dir) / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no best model there; pass the folder of a trained run "
                                "(runs/classify/<name>)")
    saved = checkpoint.load(path, map_location="cpu")
    recorded = read_json(Path(run_dir) / CONFIG).get(RUNTIME, {}).get("weights")
    started = saved.get("initial_weights")
    if recorded and started and recorded.get("sha256") != started.get("sha256"):
        raise RunNotUsableError(f"{path}: trained from {describe_weights(started)}, but the run's config.json "
                                f"records {describe_weights(recorded)}: the file is from another run")
    return model_from_checkpoint(saved, path).placed(device).eval(), int(saved["image_size"])
