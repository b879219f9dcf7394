"""Evaluate a trained model on the test split and write every report file of a run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cxrdata import CLASSES, CXRDataset
from cxrdata.lungs.cache import seen_masks
from runkit import rundir

import classifier.evaluation.crosssource as crosssource

import classifier.evaluation.run_files as report
from classifier.config import ClassifierConfig
from classifier.training.data import SYNTHETIC_SOURCE, Splits
from classifier.evaluation.gradcam import BORDER_BAND, GradCAM, border_area, border_share, mass_share
from classifier.evaluation.metrics import classification_metrics
from classifier.model.backbones import CXRClassifier
from classifier.inference.probabilities import ProbabilityEngine


def cam_targets(cam_class: str, labels: torch.Tensor) -> torch.Tensor | None:
    """The class each map explains: None (predicted), the true labels, or one fixed class."""
    if cam_class == "predicted":
        return None
    if cam_class == "true":
        return labels
    return torch.full_like(labels, CLASSES.index(cam_class))


def dataset_cams(model: CXRClassifier, dataset: CXRDataset, cam_class: str, batch_size: int,
                 device: torch.device, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps ``(N, S, S)`` and the class each explains ``(N,)``."""
    maps, targets = [], []
    with GradCAM(model) as cam:
        for images, labels in tqdm(DataLoader(dataset, batch_size=batch_size), desc="grad-cam",
                                   unit="batch", leave=False, disable=not progress):
            wanted = cam_targets(cam_class, labels)
            batch_maps, logits = cam(images.to(device), None if wanted is None else wanted.to(device))
            maps.append(batch_maps.cpu())
            targets.append(logits.argmax(1).cpu() if wanted is None else wanted)
    return torch.cat(maps).numpy(), torch.cat(targets).numpy()


def write_cross_source(engine: ProbabilityEngine, splits: Splits, config: ClassifierConfig, run_dir: Path,
                       progress: bool = True) -> dict | str:
    """Predict the out-of-source corpus images into ``cross_source.csv``; return the cross-source
    block (see :mod:`classifier.evaluation.crosssource`), or why it was not measured."""
    if not config.cross_source:
        return "switched off (--no-cross-source)"
    result = crosssource.evaluate_out_of_source(
        lambda images: engine.dataset(images, config.batch_size, progress, "out-of-source"),
        splits.train + splits.val + splits.test, splits.train, config.image_size, progress, config.region)
    if isinstance(result, str):
        return result
    images, probabilities = result
    report.write_predictions(run_dir / "cross_source.csv", images, probabilities)
    return crosssource.predicted_distribution(*crosssource.named(images, probabilities))


def write_evaluation(engine: ProbabilityEngine, test_set: CXRDataset, splits: Splits, config: ClassifierConfig,
                     run_dir: Path, training: dict, cross_source: dict | str, progress: bool = True) -> dict:
    """Write predictions.csv, metrics.json, gradcam.json, report.md, confusion.png and gradcam/
    (the grids; an overlay for each of their images).

    Returns the test metrics.
    """
    model = engine.model
    probabilities = engine.dataset(test_set, config.batch_size, progress, "test split")
    maps, targets = dataset_cams(model, test_set, config.cam_class, config.batch_size, engine.device, progress)
    report.write_predictions(run_dir / "predictions.csv", test_set.manifest, probabilities)
    test = classification_metrics(test_set.labels.numpy(), probabilities)
    by_source = crosssource.per_source(*crosssource.named(test_set.manifest, probabilities))
    cam_summary = write_cams(run_dir / "gradcam", test_set, maps, targets, probabilities, config.cam_class)
    rundir.write_json(run_dir / "gradcam.json", cam_summary)
    summary = {
        "run": run_dir.name, "config": config.to_dict(), "initial_weights": model.initial_weights, "test": test,
        "class_balance": splits.class_counts(),
        "train_sources": crosssource.source_mix(splits.train, leave_out=SYNTHETIC_SOURCE),
        "synthetic_train_images": sum(r.source == SYNTHETIC_SOURCE for r in splits.train),
        "training": training,
        "gradcam": {k: v for k, v in cam_summary.items() if k != "images"},
        "per_source": by_source, "cross_source": cross_source,
    }
    rundir.write_json(run_dir / "metrics.json", summary)
    low, high = test["accuracy_ci95"]
    report.save_confusion(run_dir / "confusion.png", test["confusion_matrix"],
                          f"{run_dir.name}: accuracy {test['accuracy']:.3f} (95% CI {low:.3f}–{high:.3f})")
    (run_dir / "report.md").write_text(report.report_markdown(summary), encoding="utf-8")
    return test


def _short(name: str, width: int = 26) -> str:
    """``name`` cut in the middle to ``width`` characters (ids differ at both ends)."""
    return name if len(name) <= width else f"{name[:11]}…{name[-(width - 12):]}"


def write_cams(folder: Path, test_set: CXRDataset, maps: np.ndarray, targets: np.ndarray,
               probabilities: np.ndarray, cam_class: str, every_overlay: bool = False) -> dict:
    """One grid per true class (and an overlay for each of its images, or for every image with
    ``every_overlay``), and the summaries of where the maps of all images lie:
    the share of CAM mass in the border band, and inside the lungs (the segmenter's masks, in the
    frame the model sees) beside the lungs' share of the image."""
    shares = border_share(torch.from_numpy(maps)).numpy()
    lungs = seen_masks(test_set.manifest, test_set.size, test_set.region, progress=False, fitted=test_set.masks)
    lung_shares = mass_share(torch.from_numpy(maps), torch.from_numpy(lungs)).numpy()
    predicted = probabilities.argmax(1)
    images, grids = [], {c: ([], []) for c in CLASSES}
    for i, record in enumerate(test_set.manifest):
        name = report.image_id(record)
        tiles, captions = grids[record.label]
        gridded = len(tiles) < report.GRID_SIZE
        images.append({"image_id": name, "path": record.path, "true": record.label,
                       "predicted": CLASSES[predicted[i]], "cam_class": CLASSES[targets[i]],
                       "border_share": None if np.isnan(shares[i]) else float(shares[i]),
                       "lung_share": None if np.isnan(lung_shares[i]) else float(lung_shares[i]),
                       "lung_area": float(lungs[i].mean())})
        if gridded or every_overlay:
            gray = test_set.uint8(i)[0].numpy()
            report.save_overlay(folder / "overlays" / f"{name}.png", gray, maps[i])
        if gridded:
            tiles.append(report.overlay(gray, maps[i]))
            captions.append(f"{_short(name)}\npred {CLASSES[predicted[i]]} {probabilities[i].max():.2f}")
    for label, (tiles, captions) in grids.items():
        if tiles:
            report.save_grid(folder / f"grid_{label}.png", tiles, captions,
                             f"true {label}: Grad-CAM for the {cam_class} class (first {len(tiles)} images)")

    def mean_of(rows: list[dict], key: str = "border_share") -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(values)) if values else None

    def by_class(key: str) -> dict:
        return {c: mean_of([r for r in images if r["true"] == c], key) for c in CLASSES}

    return {"cam_class": cam_class, "band": BORDER_BAND, "border_area": border_area(),
            "overlays": "every image" if every_overlay else f"the grids' images (first {report.GRID_SIZE} per class)",
            "mean_border_share": mean_of(images), "mean_border_share_by_true_class": by_class("border_share"),
            "region": test_set.region, "mean_lung_share": mean_of(images, "lung_share"),
            "mean_lung_area": mean_of(images, "lung_area"), "mean_lung_share_by_true_class": by_class("lung_share"),
            "mean_lung_area_by_true_class": by_class("lung_area"), "images": images}
