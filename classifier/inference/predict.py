"""Classify single image files with a finished run's best model and write a CAM overlay each."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxrdata import CLASSES, ImageReadError, read_grayscale
from cxrdata.manifest import sha256_of
from cxrdata.lungs.inputs import as_seen, lungs_of
from runkit import device as devices, rundir
from runkit.rundir import runs_root

from classifier.evaluation.gradcam import GradCAM, border_share
from classifier.evaluation.run_files import save_overlay
from classifier.inference.input_gate import Verdict, checker_for_run
from classifier.inference.runs import known_patients, load_run_model, run_config


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
        self.patients = known_patients(self.config)

    def lungs(self, gray: np.ndarray, file_sha256: str) -> np.ndarray:
        """The predicted lungs of a file's image, as its split saw them when the file is one of the
        run's or the project's manifest images (see :func:`~cxrdata.lungs.inputs.lungs_of`)."""
        return lungs_of(gray, file_sha256, self.patients.get(file_sha256))

    def __call__(self, gray: np.ndarray, cam_classes: tuple[str, ...] = ("predicted",),
                 lungs: np.ndarray | None = None) -> Analysis:
        """Classify ``gray`` (any size; centre-cropped and resized as in training, and shown as the
        model's region sees it, from ``lungs`` or the segmenter's mask) and explain each of
        ``cam_classes`` ("predicted" or class names), all in one batch."""
        region = self.model.region
        if region != "full" and lungs is None:
            lungs = lungs_of(gray)
        square = as_seen(gray, lungs, self.size, region)
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
        lungs = predictor.lungs(gray, sha256_of(file))
        analysis = predictor(gray, (cam_class,), lungs)
        (explained, cam_map), = analysis.maps.items()
        overlay_path = out_dir / _unique(f"{file.stem}.cam-{explained}", used)
        save_overlay(overlay_path, analysis.image, cam_map)
        yield Prediction(file=file, probabilities=analysis.probabilities, predicted=analysis.predicted,
                         cam_class=explained, border_share=analysis.border_shares[explained], overlay=overlay_path,
                         quality=check(gray, lungs))


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
