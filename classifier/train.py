"""Train a classifier run end to end: fit with model selection on val, then evaluate on test.

From scratch (``weights=none``) every layer trains for all epochs. From pretrained weights,
stage 1 trains the head with the backbone frozen for ``head_epochs``; stage 2 also trains the
top ``unfreeze_blocks`` backbone blocks at ``finetune_lr``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, WeightedRandomSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from cxrdata import CLASSES, CXRDataset
from runkit import checkpoint, device as devices, rundir, seed as seeds

from .augment import augment
from .config import ClassifierConfig
from .data import build_splits
from .models import (CXRClassifier, build_model, checkpoint_payload, freeze_backbone, load_weights,
                     set_training_mode, unfreeze_top)
from .evaluate import predict_probabilities, write_cross_source, write_evaluation
from .shortcuts import restyle, source_balanced_weights

RUNS_ROOT = Path("runs") / "classify"
# Settings that may change when resuming: they do not alter the epochs already trained.
RESUMABLE_KEYS = ("epochs", "early_stopping", "device", "cam_class", "cross_source")


def default_run_dir(config: ClassifierConfig) -> Path:
    return RUNS_ROOT / config.run_name()


def train_classifier(config: ClassifierConfig, run_dir: Path | str | None = None, *,
                     resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Train, select on val, evaluate on test and write every output into ``run_dir``.

    ``run_dir`` defaults to ``runs/classify/<config.run_name()>``. Returns the run folder.
    Raises :class:`runkit.rundir.RunExistsError` for a taken folder without ``resume`` or
    ``overwrite``.
    """
    # data, device and weights fail before the run folder is touched (e.g. no synthetic data, offline)
    splits = build_splits(config)
    device = devices.pick_device(config.device)
    devices.tune_for(device)
    seeds.seed_everything(config.seed)
    model = build_model(config.backbone, config.weights, config.hide_lungs, config.equalize).to(device)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    rundir.open_run(run_dir, config.to_dict(), overwrite=overwrite, resume=resume,
                    resumable_keys=RESUMABLE_KEYS)
    splits.train.write(run_dir / "train_images.csv", splits.train.extra_columns)
    if progress:
        tqdm.write("class balance: " + "; ".join(f"{split} " + " ".join(f"{c}={n}" for c, n in counts.items())
                                                 for split, counts in splits.class_counts().items()))
    datasets = {name: CXRDataset(getattr(splits, name), config.image_size, progress=progress)
                for name in ("train", "val", "test")}
    with rundir.sigterm_as_interrupt():
        try:
            history = fit(model, datasets["train"], datasets["val"], config, run_dir, device, progress)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"interrupted; last.pt in {run_dir} holds the last finished epoch: "
                                    "continue with --resume") from None
    best = checkpoint.load(run_dir / "best.pt", map_location=device)
    load_weights(model, best, run_dir / "best.pt")
    cross_source = write_cross_source(model, splits, config, run_dir, device, progress)
    summary = write_evaluation(model, datasets["test"], splits, config, run_dir, device,
                               training={**history, "best_epoch": best["epoch"]}, cross_source=cross_source,
                               progress=progress)
    rundir.mark_finished(run_dir, {"test_accuracy": summary["accuracy"], "best_epoch": best["epoch"]})
    return run_dir


def stage_of(epoch: int, config: ClassifierConfig) -> str:
    if not config.pretrained:
        return "end-to-end"
    return "head" if epoch < config.head_epochs else "finetune"


def configure_stage(model: CXRClassifier, config: ClassifierConfig, stage: str) -> torch.optim.Adam:
    """Set which parameters train in ``stage`` and return their optimizer."""
    if stage == "end-to-end":
        model.requires_grad_(True)
        return devices.adam([{"params": list(model.parameters()), "lr": config.lr, "name": "all"}])
    freeze_backbone(model)
    groups = [{"params": list(model.head.parameters()), "lr": config.lr, "name": "head"}]
    if stage == "finetune":
        groups.append({"params": unfreeze_top(model, config.unfreeze_blocks), "lr": config.finetune_lr,
                       "name": "top"})
    return devices.adam(groups)


def train_loader(dataset: CXRDataset, config: ClassifierConfig) -> DataLoader:
    """Shuffled batches, or weighted draws (class-balanced and/or source-balanced); a last
    batch of one is dropped (batch norm needs two)."""
    drop_last = len(dataset) % config.batch_size == 1
    if not (config.weighted_sampling or config.source_balanced):
        return DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=drop_last)
    weights = torch.ones(len(dataset), dtype=torch.double)
    if config.source_balanced:
        weights = source_balanced_weights(dataset.labels.tolist(), [r.source for r in dataset.manifest])
    if config.weighted_sampling:
        per_class = torch.zeros(len(CLASSES), dtype=torch.double).index_add_(0, dataset.labels, weights)
        weights = weights / per_class[dataset.labels]
    sampler = WeightedRandomSampler(weights, num_samples=len(dataset))
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=drop_last)


def fit(model: CXRClassifier, train_set: CXRDataset, val_set: CXRDataset, config: ClassifierConfig,
        run_dir: Path, device: torch.device, progress: bool = True) -> dict:
    """Train for ``config.epochs`` (or until early stopping), keeping best.pt (by val accuracy,
    then val loss) and last.pt (everything needed to resume). Returns the training summary."""
    state = _resume_state(run_dir, model, device)
    loader = train_loader(train_set, config)
    scaler = devices.grad_scaler(device)
    optimizer, stage = None, None
    writer = SummaryWriter(log_dir=str(run_dir), purge_step=state["epoch"] + 1)
    try:
        for epoch in range(state["epoch"] + 1, config.epochs):
            if config.early_stopping and state["epochs_without_gain"] >= config.early_stopping:
                if progress:
                    tqdm.write(f"early stop: no better val score for {config.early_stopping} epochs")
                break
            if stage_of(epoch, config) != stage:
                stage = stage_of(epoch, config)
                optimizer = configure_stage(model, config, stage)
                if state.get("stage") == stage and "optimizer" in state:
                    optimizer.load_state_dict(state.pop("optimizer"))
                    scaler.load_state_dict(state.pop("scaler"))
            train_loss, train_acc = train_epoch(model, loader, optimizer, scaler, config, device,
                                                 f"epoch {epoch + 1}/{config.epochs} ({stage})", progress)
            val_loss, val_acc = evaluate_loss(model, val_set, config.batch_size, device)
            record = {"epoch": epoch, "stage": stage, "train_loss": train_loss, "train_accuracy": train_acc,
                      "val_loss": val_loss, "val_accuracy": val_acc}
            state["history"].append(record)
            if (val_acc, -val_loss) > tuple(state["best_score"]):
                state["best_score"], state["epochs_without_gain"] = [val_acc, -val_loss], 0
                checkpoint.atomic_save(checkpoint_payload(model, epoch=epoch, val_accuracy=val_acc,
                                                          val_loss=val_loss, image_size=config.image_size),
                                       run_dir / "best.pt")
            else:
                state["epochs_without_gain"] += 1
            state.update(epoch=epoch, stage=stage)
            checkpoint.atomic_save(checkpoint_payload(
                model, optimizer=optimizer.state_dict(), scaler=scaler.state_dict(), rng=seeds.rng_state(),
                image_size=config.image_size, **{k: v for k, v in state.items() if k not in ("optimizer", "scaler")}),
                run_dir / "last.pt")
            _log_epoch(writer, record, optimizer)
            if progress:
                tqdm.write(f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_acc:.3f} | "
                           f"val loss {val_loss:.4f} acc {val_acc:.3f}")
    finally:
        writer.close()
    epochs_run = len(state["history"])
    return {"epochs_run": epochs_run, "stopped_early": epochs_run < config.epochs,
            "history": state["history"]}


def _resume_state(run_dir: Path, model: CXRClassifier, device: torch.device) -> dict:
    """The saved training state from last.pt (weights and RNG restored), or a fresh one."""
    path = run_dir / "last.pt"
    if not path.is_file():
        return {"epoch": -1, "history": [], "best_score": [-1.0, -float("inf")], "epochs_without_gain": 0}
    saved = checkpoint.load(path, map_location=device)
    load_weights(model, saved, path)
    seeds.set_rng_state(saved["rng"])
    return {k: saved[k] for k in ("epoch", "stage", "history", "best_score", "epochs_without_gain",
                                  "optimizer", "scaler")}


def train_epoch(model: CXRClassifier, loader: DataLoader, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, config: ClassifierConfig, device: torch.device,
                desc: str = "train", progress: bool = True) -> tuple[float, float]:
    """One pass over ``loader`` with augmentation; returns mean loss and accuracy."""
    set_training_mode(model)
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress)
    for images, labels in bar:
        images = augment(images.to(device, non_blocking=True), config.augment)
        if config.style_augment:
            images = restyle(images)
        labels = labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with devices.autocast(device):
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    return total_loss / seen, correct / seen


def evaluate_loss(model: CXRClassifier, dataset: CXRDataset, batch_size: int,
                  device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on ``dataset``."""
    probabilities = torch.from_numpy(predict_probabilities(model, dataset, batch_size, device))
    loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), dataset.labels).item()
    return loss, (probabilities.argmax(1) == dataset.labels).float().mean().item()


def _log_epoch(writer: SummaryWriter, record: dict, optimizer: torch.optim.Optimizer) -> None:
    step = record["epoch"] + 1
    for split in ("train", "val"):
        writer.add_scalar(f"loss/{split}", record[f"{split}_loss"], step)
        writer.add_scalar(f"accuracy/{split}", record[f"{split}_accuracy"], step)
    for group in optimizer.param_groups:
        writer.add_scalar(f"lr/{group['name']}", group["lr"], step)
    writer.flush()
