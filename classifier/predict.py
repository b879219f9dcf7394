"""Classify single image files with a finished run's best model and write a CAM overlay each."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cxrdata import CLASSES, ImageReadError, read_grayscale
from cxrdata.images import fit_square
from runkit import checkpoint, device as devices

from .evaluate import cam_targets
from .gradcam import GradCAM, border_share
from .models import CXRClassifier, model_from_checkpoint
from .report import save_overlay


@dataclass
class Prediction:
    file: Path
    probabilities: dict[str, float]
    predicted: str
    cam_class: str
    border_share: float
    overlay: Path


def load_run_model(run_dir: Path | str, device: torch.device) -> tuple[CXRClassifier, int]:
    """The best model of a run and the image size it was trained at."""
    path = Path(run_dir) / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no best model there; pass the folder of a trained run "
                                "(runs/classify/<name>)")
    saved = checkpoint.load(path, map_location="cpu")
    return model_from_checkpoint(saved, path).to(device).eval(), int(saved["image_size"])


def predict_files(files: list[Path], run_dir: Path | str, out_dir: Path | str | None = None,
                  cam_class: str = "predicted", device: str = "auto"):
    """Yield a :class:`Prediction` per readable file, or the :class:`ImageReadError` of an
    unreadable one (the others go on). Overlays go to ``out_dir`` (default ``<run>/predict``)."""
    if cam_class not in ("predicted",) + CLASSES:
        raise ValueError(f"cam_class {cam_class!r}: choose predicted or one of {', '.join(CLASSES)}")
    torch_device = devices.pick_device(device)
    model, size = load_run_model(run_dir, torch_device)
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dir) / "predict"
    with GradCAM(model) as cam:
        for file in map(Path, files):
            try:
                gray = fit_square(read_grayscale(file), size)
            except ImageReadError as exc:
                yield exc
                continue
            image = torch.tensor(gray, dtype=torch.float32).div(255).view(1, 1, size, size).to(torch_device)
            wanted = cam_targets(cam_class, torch.zeros(1, dtype=torch.long))
            maps, logits = cam(image, None if wanted is None else wanted.to(torch_device))
            probabilities = logits.float().softmax(1)[0].cpu()
            explained = int(probabilities.argmax()) if wanted is None else int(wanted[0])
            overlay_path = out_dir / f"{file.stem}.cam-{CLASSES[explained]}.png"
            save_overlay(overlay_path, gray, maps[0].cpu().numpy())
            yield Prediction(file=file, probabilities=dict(zip(CLASSES, probabilities.tolist())),
                             predicted=CLASSES[int(probabilities.argmax())], cam_class=CLASSES[explained],
                             border_share=float(border_share(maps.cpu())[0]), overlay=overlay_path)
