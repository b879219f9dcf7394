"""Classify single image files with a finished run's best model and write a CAM overlay each."""
from __future__ import annotations

import csv

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxrdata import CLASSES, ImageReadError, read_grayscale
from cxrdata.images import fit_square
from runkit import checkpoint, device as devices, rundir
from runkit.rundir import CONFIG, FINISHED, check_not_locked, is_finished, read_json, runs_root

from classifier.evaluation.gradcam import GradCAM, border_share
from classifier.model.backbones import CXRClassifier, model_from_checkpoint
from classifier.inference.input_gate import Verdict, checker_for_run
from classifier.evaluation.run_files import save_overlay


PREDICT_ROOT = runs_root("predict")


@dataclass
class Prediction:
    file: Path
    probabilities: dict[str, float]
    predicted: str
    cam_class: str
    border_share: float
    overlay: Path
    quality: Verdict


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


def load_run_model(run_dir: Path | str, device: torch.device) -> tuple[CXRClassifier, int]:
    """The best model of a run (or of an exported folder) and the image size it was trained at."""
    if is_export(run_dir):
        from classifier.inference.export import load_exported

        config = read_json(Path(run_dir) / CONFIG)
        return load_exported(Path(run_dir), config).to(device).eval(), int(config["image_size"])
    path = Path(run_dir) / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no best model there; pass the folder of a trained run "
                                "(runs/classify/<name>)")
    saved = checkpoint.load(path, map_location="cpu")
    return model_from_checkpoint(saved, path).to(device).eval(), int(saved["image_size"])


def default_out_dir(run_dir: Path | str) -> Path:
    """Where overlays go unless told: ``runs/predict/<run name>``, never inside the run."""
    return PREDICT_ROOT / Path(run_dir).resolve().name


@dataclass
class Analysis:
    """What the model says about one image: probabilities, and a Grad-CAM map with its border
    share for each explained class."""
    image: np.ndarray  # the square grayscale image the model saw
    probabilities: dict[str, float]
    predicted: str
    maps: dict[str, np.ndarray]
    border_shares: dict[str, float]


class Predictor:
    """A finished run's best model, loaded once, answering for one grayscale image at a time."""

    def __init__(self, run_dir: Path | str, device: str = "auto", allow_unfinished: bool = False):
        self.device = devices.pick_device(device)
        self.config = run_config(run_dir, allow_unfinished)
        self.model, self.size = load_run_model(run_dir, self.device)

    def __call__(self, gray: np.ndarray, cam_classes: tuple[str, ...] = ("predicted",)) -> Analysis:
        """Classify ``gray`` (any size; centre-cropped and resized as in training) and explain
        each of ``cam_classes`` ("predicted" or class names), all in one batch."""
        square = fit_square(gray, self.size)
        image = torch.tensor(square, dtype=torch.float32).div(255).view(1, 1, self.size, self.size).to(self.device)
        explained = list(cam_classes)
        if "predicted" in explained:  # which class that is must be known before explaining it
            with torch.no_grad():
                answer = CLASSES[int(self.model(image).argmax())]
            explained = [answer if c == "predicted" else c for c in explained]
        targets = torch.tensor([CLASSES.index(c) for c in explained], device=self.device)
        with GradCAM(self.model) as cam:
            maps, logits = cam(image.expand(len(explained), -1, -1, -1), targets)
        probabilities = logits[0].float().softmax(0).cpu()
        predicted = CLASSES[int(probabilities.argmax())]
        maps = maps.cpu()
        shares = border_share(maps).tolist()
        return Analysis(image=square, probabilities=dict(zip(CLASSES, probabilities.tolist())), predicted=predicted,
                        maps={c: m.numpy() for c, m in zip(explained, maps)},
                        border_shares=dict(zip(explained, shares)))


def predict_files(files: list[Path], run_dir: Path | str, out_dir: Path | str | None = None,
                  cam_class: str = "predicted", device: str = "auto", allow_unfinished: bool = False):
    """Yield a :class:`Prediction` per readable file, or the :class:`ImageReadError` of an
    unreadable one (the others go on). Overlays go to ``out_dir`` (default
    :func:`default_out_dir`); two files of the same name get distinct overlay names."""
    if cam_class not in ("predicted",) + CLASSES:
        raise ValueError(f"cam_class {cam_class!r}: choose predicted or one of {', '.join(CLASSES)}")
    predictor = Predictor(run_dir, device, allow_unfinished)
    check = checker_for_run(predictor.config)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(run_dir)
    used: set[str] = set()
    for file in map(Path, files):
        try:
            gray = read_grayscale(file)
        except ImageReadError as exc:
            yield exc
            continue
        analysis = predictor(gray, (cam_class,))
        (explained, cam_map), = analysis.maps.items()
        overlay_path = out_dir / _unique(f"{file.stem}.cam-{explained}", used)
        save_overlay(overlay_path, analysis.image, cam_map)
        yield Prediction(file=file, probabilities=analysis.probabilities, predicted=analysis.predicted,
                         cam_class=explained, border_share=analysis.border_shares[explained], overlay=overlay_path,
                         quality=check(gray))


def write_csv(path: Path | str, predictions: list[Prediction]) -> None:
    """One row per classified file, written atomically."""
    rundir.write_csv(path, ["file", "predicted", *(f"p_{c}" for c in CLASSES), "cam_class", "border_share", "overlay",
                            "input_ok", "input_check"],
                     ([p.file, p.predicted, *(f"{p.probabilities[c]:.6f}" for c in CLASSES), p.cam_class,
                       f"{p.border_share:.4f}", p.overlay, int(p.quality.ok), p.quality.sentence()]
                      for p in predictions))


def _unique(stem: str, used: set[str]) -> str:
    """``stem.png``, or ``stem-2.png``, ``stem-3.png``… when that name was already used."""
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name
