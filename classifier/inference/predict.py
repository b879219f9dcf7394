"""Classify image files with a finished run's best model: probabilities (ONNX Runtime where it
can, see :mod:`classifier.inference.probabilities`), the input gate's verdict, and a Grad-CAM
overlay each when asked."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from cxrdata import CLASSES, ImageReadError, read_grayscale
from cxrdata.manifest import sha256_of
from cxrdata.lungs import default_segmenter
from cxrdata.images import fit_square
from cxrdata.lungs.cache import cached_masks, shown
from cxrdata.lungs.inputs import lungs_of
from runkit import device as devices, rundir
from runkit.rundir import runs_root

from classifier.evaluation.gradcam import GradCAM, border_share
from classifier.evaluation.run_files import save_overlay
from classifier.inference.input_gate import Verdict, checker_for_run
from classifier.inference.probabilities import ProbabilityEngine
from classifier.inference.runs import known_patients, load_run_model, run_config


PREDICT_ROOT = runs_root("predict")
BATCH = 32  # files read, segmented and scored together
THREADS = 2  # files read and prepared at once


@dataclass
class Prediction:
    file: Path
    probabilities: dict[str, float]
    predicted: str
    quality: Verdict
    cam_class: str | None = None  # the Grad-CAM fields only when an overlay was asked for
    border_share: float | None = None
    overlay: Path | None = None


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
    """A finished run's best model, loaded once: probabilities from its :class:`ProbabilityEngine`,
    Grad-CAM maps from PyTorch."""

    def __init__(self, run_dir: Path | str, device: str = "auto", allow_unfinished: bool = False,
                 engine: str = "auto"):
        self.device = devices.pick_device(device)
        self.config = run_config(run_dir, allow_unfinished)
        self.model, self.size = load_run_model(run_dir, self.device)
        self.patients = known_patients(self.config)
        self.engine = ProbabilityEngine(self.model, self.size, self.device, engine)

    def lungs(self, gray: np.ndarray, file_sha256: str) -> np.ndarray:
        """The predicted lungs of a file's image, as its split saw them when the file is one of the
        run's or the project's manifest images (see :func:`~cxrdata.lungs.inputs.lungs_of`)."""
        return lungs_of(gray, file_sha256, self.patients.get(file_sha256))

    def fitted(self, gray: np.ndarray, lungs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """``gray`` and its lung mask centre-cropped and resized as in training (the mask only where
        the model's region needs it)."""
        if self.model.region == "full":
            return fit_square(gray, self.size), None
        return fit_square(gray, self.size), fit_square(lungs.astype(np.uint8) * 255, self.size) >= 128

    def seen(self, fitted: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray:
        """``(N, size, size)`` uint8: :meth:`fitted` images as the model sees them (its region shown)."""
        squares = np.stack([square for square, _ in fitted])
        if self.model.region == "full":
            return squares
        return shown(squares, np.stack([mask for _, mask in fitted]), self.model.region)

    def explain(self, squares: np.ndarray, classes: list[str]) -> np.ndarray:
        """Grad-CAM maps ``(N, size, size)`` of ``squares`` ``(N, size, size)`` uint8, one class each."""
        images = torch.from_numpy(squares).float().div(255).unsqueeze(1).to(self.device)
        targets = torch.tensor([CLASSES.index(c) for c in classes], device=self.device)
        with GradCAM(self.model) as cam:
            maps, _ = cam(images, targets)
        return maps.cpu().numpy()

    def __call__(self, gray: np.ndarray, cam_classes: tuple[str, ...] = ("predicted",),
                 lungs: np.ndarray | None = None) -> Analysis:
        """Classify ``gray`` (any size; centre-cropped and resized as in training, and shown as the
        model's region sees it, from ``lungs`` or the segmenter's mask) and explain each of
        ``cam_classes`` ("predicted" or class names; none for probabilities alone)."""
        if self.model.region != "full" and lungs is None:
            lungs = lungs_of(gray)
        square = self.seen([self.fitted(gray, lungs)])[0]
        probabilities = self.engine(torch.from_numpy(square).float().div(255)[None, None])[0]
        predicted = CLASSES[int(probabilities.argmax())]
        explained = [predicted if c == "predicted" else c for c in cam_classes]
        maps = self.explain(np.repeat(square[None], len(explained), 0), explained) if explained else []
        shares = border_share(torch.from_numpy(np.asarray(maps))).tolist() if explained else []
        return Analysis(image=square, probabilities=dict(zip(CLASSES, probabilities.tolist())), predicted=predicted,
                        maps=dict(zip(explained, maps)), border_shares=dict(zip(explained, shares)))


def predict_files(files: list[Path], run_dir: Path | str, out_dir: Path | str | None = None,
                  cam_class: str | None = None, device: str = "auto", allow_unfinished: bool = False,
                  engine: str = "auto") -> Iterator[Prediction | ImageReadError]:
    """Yield a :class:`Prediction` per readable file, or the :class:`ImageReadError` of an
    unreadable one (the others go on), in the order given. With ``cam_class`` ("predicted" or a
    class) each file also gets a Grad-CAM overlay in ``out_dir`` (default :func:`default_out_dir`;
    two files of the same name get distinct overlay names). Files are read, segmented (masks from
    the cache where the same bytes were segmented before) and scored :data:`BATCH` at a time."""
    if cam_class is not None and cam_class not in ("predicted",) + CLASSES:
        raise ValueError(f"cam_class {cam_class!r}: choose predicted or one of {', '.join(CLASSES)}")
    predictor = Predictor(run_dir, device, allow_unfinished, engine)
    check = checker_for_run(predictor.config)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(run_dir)
    used: set[str] = set()
    files = list(map(Path, files))
    with ThreadPoolExecutor(THREADS) as pool:  # decoding and resizing release the GIL
        for start in range(0, len(files), BATCH):
            outcomes = list(pool.map(_read, files[start:start + BATCH]))
            read = [o for o in outcomes if not isinstance(o, ImageReadError)]
            predictions = iter(_predict_batch(predictor, check, read, cam_class, out_dir, used, pool) if read else [])
            for outcome in outcomes:
                yield outcome if isinstance(outcome, ImageReadError) else next(predictions)


def _read(file: Path) -> tuple[Path, np.ndarray, str] | ImageReadError:
    try:
        return file, read_grayscale(file), sha256_of(file)
    except ImageReadError as exc:
        return exc


def _predict_batch(predictor: Predictor, check, read: list[tuple[Path, np.ndarray, str]], cam_class: str | None,
                   out_dir: Path, used: set[str], pool: ThreadPoolExecutor) -> list[Prediction]:
    """The predictions of files read as ``(file, image, sha256)``, with overlays when ``cam_class``."""
    masks = cached_masks([(sha, predictor.patients.get(sha)) for _, _, sha in read], lambda i: read[i][1],
                         default_segmenter(), progress=False)
    prepared = list(pool.map(lambda gray, lungs: (predictor.fitted(gray, lungs), check(gray, lungs)),
                             [gray for _, gray, _ in read], masks))
    squares = predictor.seen([fitted for fitted, _ in prepared])
    verdicts = [verdict for _, verdict in prepared]
    probabilities = predictor.engine(torch.from_numpy(squares).float().div(255).unsqueeze(1))
    predicted = [CLASSES[int(p.argmax())] for p in probabilities]
    predictions = [Prediction(file=file, probabilities=dict(zip(CLASSES, p.tolist())), predicted=name,
                              quality=verdict)
                   for (file, _, _), p, name, verdict in zip(read, probabilities, predicted, verdicts)]
    if cam_class is not None:
        explained = [name if cam_class == "predicted" else cam_class for name in predicted]
        maps = predictor.explain(squares, explained)
        for prediction, square, cam_map, name, share in zip(predictions, squares, maps, explained,
                                                             border_share(torch.from_numpy(maps)).tolist()):
            prediction.overlay = out_dir / _unique(f"{prediction.file.stem}.cam-{name}", used)
            save_overlay(prediction.overlay, square, cam_map)
            prediction.cam_class, prediction.border_share = name, share
    return predictions


def write_csv(path: Path | str, predictions: list[Prediction]) -> None:
    """One row per classified file, written atomically (the Grad-CAM columns empty without overlays)."""
    rundir.write_csv(path, ["file", "predicted", *(f"p_{c}" for c in CLASSES), "cam_class", "border_share", "overlay",
                            "input_ok", "input_check"],
                     ([p.file, p.predicted, *(f"{p.probabilities[c]:.6f}" for c in CLASSES), p.cam_class or "",
                       "" if p.border_share is None else f"{p.border_share:.4f}", p.overlay or "", int(p.quality.ok),
                       p.quality.sentence()]
                      for p in predictions))


def _unique(stem: str, used: set[str]) -> str:
    """``stem.png``, or ``stem-2.png``, ``stem-3.png``… when that name was already used."""
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name
