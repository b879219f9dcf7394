"""Train a classifier run end to end: fit with model selection on val, then evaluate on test.

From scratch (``weights=none``) every layer trains for all epochs. From pretrained weights,
stage 1 trains the head with the backbone frozen for ``head_epochs``; stage 2 also trains the
top ``unfreeze_blocks`` backbone blocks at ``finetune_lr``.
"""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, WeightedRandomSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from cxrdata import CLASSES, CXRDataset
from runkit import checkpoint, device as devices, distributed, rundir, seed as seeds
from runkit.interrupts import deferred_interrupts
from runkit.resources import memory_guard

from classifier.training.adversary import SourceAdversary, adversary_weight, check_sources, reverse_gradient
from classifier.training.augment import augment
from classifier.config import ClassifierConfig
from classifier.training.data import Splits, build_splits
from classifier.model.backbones import build_model, CXRClassifier
from classifier.model.checkpoints import checkpoint_payload, load_weights
from classifier.model.freezing import freeze_backbone, set_training_mode, unfreeze_top
from classifier.evaluation.model_card import write_model_card
from classifier.evaluation.held_out import write_cross_source, write_evaluation
from classifier.inference.probabilities import ProbabilityEngine
from classifier.model.weights import describe_weights
from classifier.training.shortcuts import restyle, source_balanced_weights

RUNS_ROOT = rundir.runs_root("classify")
# Settings that may change when resuming: they do not alter the epochs already trained.
RESUMABLE_KEYS = ("epochs", "early_stopping", "device", "precision", "cam_class", "cross_source")
INTERRUPTED = "interrupted; last.pt in {} holds the last finished epoch: continue with --resume"


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
    if not len(splits.val) and (config.select != "last" or config.early_stopping):
        raise ValueError(f"{config.dataset} has no val split, so nothing can choose the model or stop early: "
                         "pass --select last (keep the last epoch) and no --early-stopping")
    world = distributed.world_from_env()
    if config.source_adversary:
        check_sources(splits.train, config.dataset)
        if world.size > 1:
            raise ValueError("--source-adversary runs on one process only for now (its heads are not "
                             "synchronised across torchrun ranks); drop NPROC or the adversary")
    if len(splits.train) < 2 * world.size:
        raise ValueError(f"{world.size} processes (--nproc_per_node / NPROC) for {len(splits.train)} training "
                         f"images: each process needs at least 2 (batch norm); use at most "
                         f"{max(1, len(splits.train) // 2)}")
    with distributed.session(config.device) as (world, device), ExitStack() as hold, memory_guard(
            "training the classifier", config.batch_size, config.image_size, device,
            "lower --batch-size (or --image-size) and rerun with --resume"):
        return _train(config, splits, Path(run_dir) if run_dir is not None else default_run_dir(config), world,
                      device, resume=resume, overwrite=overwrite, progress=progress and world.is_main, hold=hold)


def _train(config: ClassifierConfig, splits: Splits, run_dir: Path, world: distributed.World, device: torch.device, *,
           resume: bool, overwrite: bool, progress: bool, hold: ExitStack) -> Path:
    devices.tune_for(device)
    seeds.seed_everything(config.seed)
    model = build_model(config.backbone, config.weights, config.hide_lungs, config.equalize, config.head,
                        config.region).placed(device)
    if world.distributed and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics over all ranks
    if world.rank:
        seeds.seed_everything(config.seed + world.rank)  # each rank's own augmentation draws

    def record_training_set() -> None:
        splits.train.write(run_dir / "train_images.csv", splits.train.extra_columns)
        if progress:
            tqdm.write("class balance: " + "; ".join(f"{split} " + " ".join(f"{c}={n}" for c, n in counts.items())
                                                     for split, counts in splits.class_counts().items()))

    if resume:
        check_same_weights(run_dir, config.weights, model.initial_weights)
    runtime = {**devices.precision_record(device, config.precision), "weights": model.initial_weights}
    distributed.claim_run(world, run_dir, config.to_dict(), runtime=runtime,
                          batch_size=config.batch_size, resume=resume, overwrite=overwrite,
                          resumable_keys=RESUMABLE_KEYS, after=record_training_set, hold=hold)
    names = ("train",)  # rank 0 also evaluates
    if world.is_main:
        names = ("train", "test") + (("val",) if len(splits.val) else ())
    datasets = {name: CXRDataset(getattr(splits, name), config.image_size, progress=progress, region=config.region)
                for name in names}
    history = fit(model, datasets["train"], datasets.get("val"), config, run_dir, device, progress, world)
    if not world.is_main:
        return run_dir
    best = checkpoint.load(run_dir / "best.pt", map_location=device)
    load_weights(model, best, run_dir / "best.pt")
    engine = ProbabilityEngine(model, config.image_size, device)
    cross_source = write_cross_source(engine, splits, config, run_dir, progress)
    summary = write_evaluation(engine, datasets["test"], splits, config, run_dir,
                               training={**history, "best_epoch": best["epoch"]}, cross_source=cross_source,
                               progress=progress)
    rundir.mark_finished(run_dir, {"test_accuracy": summary["accuracy"], "best_epoch": best["epoch"]})
    write_model_card(run_dir, run_dir / "MODEL_CARD.md")
    return run_dir


def check_same_weights(run_dir: Path, weights: str, identity: dict) -> None:
    """Refuse to resume a run whose recorded starting weights are not the ones ``weights`` gives now."""
    config_file = run_dir / rundir.CONFIG
    recorded = rundir.read_json(config_file).get(rundir.RUNTIME, {}).get("weights") if config_file.is_file() else None
    if recorded and recorded.get("sha256") != identity.get("sha256"):
        raise rundir.RunExistsError(f"{run_dir}: trained from {describe_weights(recorded)}, but --weights {weights} "
                                    f"now gives {describe_weights(identity)}; resume where those weights are, or "
                                    "start again with --overwrite")


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


def train_loader(dataset: CXRDataset, config: ClassifierConfig,
                 world: distributed.World = distributed.World()) -> DataLoader:
    """Shuffled batches, or weighted draws (class-balanced and/or source-balanced); a last
    batch of one is dropped (batch norm needs two). With several ranks, each rank gets a
    disjoint share of every epoch (call ``loader.sampler.set_epoch`` each epoch)."""
    weighted = config.weighted_sampling or config.source_balanced
    if weighted:
        weights = torch.ones(len(dataset), dtype=torch.double)
        if config.source_balanced:
            weights = source_balanced_weights(dataset.labels.tolist(), [r.source for r in dataset.manifest])
        if config.weighted_sampling:
            per_class = torch.zeros(len(CLASSES), dtype=torch.double).index_add_(0, dataset.labels, weights)
            weights = weights / per_class[dataset.labels]
    if world.distributed:
        sampler = (ShardedWeightedSampler(weights, len(dataset), world, config.seed) if weighted else
                   DistributedSampler(dataset, world.size, world.rank, shuffle=True, seed=config.seed))
    elif weighted:
        sampler = WeightedRandomSampler(weights, num_samples=len(dataset))
    else:
        sampler = None
    share = len(sampler) if sampler is not None else len(dataset)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
                      drop_last=share % config.batch_size == 1)


class ShardedWeightedSampler(Sampler):
    """Weighted draws with replacement for one rank: every rank draws the same epoch from a
    generator seeded by ``seed`` and the epoch, and keeps every ``world.size``-th draw."""

    def __init__(self, weights: torch.Tensor, draws: int, world: distributed.World, seed: int):
        self.weights, self.world, self.seed, self.epoch = weights, world, seed, 0
        self.per_rank = -(-draws // world.size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, self.per_rank * self.world.size, replacement=True,
                                  generator=generator)
        return iter(draws[self.world.rank::self.world.size].tolist())


def fit(model: CXRClassifier, train_set: CXRDataset, val_set: CXRDataset | None, config: ClassifierConfig,
        run_dir: Path, device: torch.device, progress: bool = True,
        world: distributed.World = distributed.World()) -> dict:
    """Train for ``config.epochs`` (or until early stopping), keeping best.pt (by val accuracy,
    then val loss; or the last epoch with ``select="last"``) and last.pt (everything needed to
    resume). ``val_set`` None (no validation split) needs ``select="last"``. Returns the training summary.

    With several ranks each trains on its share of every epoch and DistributedDataParallel
    averages the gradients; rank 0 alone evaluates ``val_set`` and writes. Ctrl-C or SIGTERM (to
    any rank) stops every rank after the current batch, with last.pt from the last whole epoch.
    """
    adversary = (SourceAdversary(model.features, check_sources(train_set.manifest, config.dataset)).to(device)
                 if config.source_adversary else None)
    state = _resume_state(run_dir, model, device, world, adversary)
    loader = train_loader(WithSourceTargets(train_set, adversary) if adversary else train_set, config, world)
    scaler = devices.grad_scaler(device, config.precision)
    optimizer, stage, trained = None, None, model
    writer = SummaryWriter(log_dir=str(run_dir), purge_step=state["epoch"] + 1) if world.is_main else None
    try:
        with deferred_interrupts() as stop:
            for epoch in range(state["epoch"] + 1, config.epochs):
                if config.early_stopping and state["epochs_without_gain"] >= config.early_stopping:
                    if progress:
                        tqdm.write(f"early stop: no better val score for {config.early_stopping} epochs")
                    break
                if stage_of(epoch, config) != stage:
                    stage = stage_of(epoch, config)
                    optimizer = configure_stage(model, config, stage)
                    if adversary is not None:
                        optimizer.add_param_group({"params": list(adversary.parameters()), "lr": config.lr,
                                                   "name": "adversary"})
                    trained = distributed.wrap(model, world, device)  # after requires_grad is set
                    if state.get("stage") == stage and "optimizer" in state:
                        optimizer.load_state_dict(state.pop("optimizer"))
                        scaler.load_state_dict(state.pop("scaler"))
                if hasattr(loader.sampler, "set_epoch"):
                    loader.sampler.set_epoch(epoch)
                weight = adversary_weight(config.source_adversary, epoch, config.adversary_warmup)
                train_loss, train_acc, adv = train_epoch(trained, loader, optimizer, scaler, config, device,
                                                         f"epoch {epoch + 1}/{config.epochs} ({stage})", progress,
                                                         stop, adversary, weight)
                val_loss, val_acc = distributed.on_main(
                    world, lambda: (evaluate_loss(model, val_set, config.batch_size, device) if val_set
                                    else (None, None)))
                record = {"epoch": epoch, "stage": stage, "train_loss": train_loss, "train_accuracy": train_acc,
                          "val_loss": val_loss, "val_accuracy": val_acc,
                          **({"adversary_weight": weight, **adv} if adversary is not None else {})}
                state["history"].append(record)
                improved = config.select == "last" or (val_acc, -val_loss) > tuple(state["best_score"])
                if improved:
                    state["best_score"], state["epochs_without_gain"] = [val_acc or 0.0, -(val_loss or 0.0)], 0
                else:
                    state["epochs_without_gain"] += 1
                state.update(epoch=epoch, stage=stage)
                rngs = distributed.gather(seeds.rng_state())
                if world.is_main:
                    _save_epoch(model, optimizer, scaler, rngs, state, record, improved, config, run_dir, world,
                                adversary)
                    _log_epoch(writer, record, optimizer)
                if progress:
                    tqdm.write(f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_acc:.3f}"
                               + (f" | val loss {val_loss:.4f} acc {val_acc:.3f}" if val_set else " (no val split)"))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(INTERRUPTED.format(run_dir)) from None
    finally:
        if writer:
            writer.close()
    epochs_run = len(state["history"])
    return {"epochs_run": epochs_run, "stopped_early": epochs_run < config.epochs,
            "history": state["history"]}


def _save_epoch(model, optimizer, scaler, rngs: list, state: dict, record: dict, improved: bool,
                config: ClassifierConfig, run_dir: Path, world: distributed.World,
                adversary: SourceAdversary | None = None) -> None:
    """best.pt when the epoch improved on val, and last.pt (with every rank's RNG state)."""
    if improved:
        checkpoint.atomic_save(checkpoint_payload(model, epoch=record["epoch"], val_accuracy=record["val_accuracy"],
                                                  val_loss=record["val_loss"], image_size=config.image_size),
                               run_dir / "best.pt")
    checkpoint.atomic_save(checkpoint_payload(
        model, optimizer=optimizer.state_dict(), scaler=scaler.state_dict(), rng=rngs[0], other_ranks_rng=rngs[1:],
        world_size=world.size, image_size=config.image_size,
        **({"adversary": adversary.state_dict()} if adversary is not None else {}),
        **{k: v for k, v in state.items() if k not in ("optimizer", "scaler")}), run_dir / "last.pt")


def _resume_state(run_dir: Path, model: CXRClassifier, device: torch.device,
                  world: distributed.World = distributed.World(), adversary: SourceAdversary | None = None) -> dict:
    """The saved training state from last.pt (weights, the adversary's and this rank's RNG
    restored), or a fresh one."""
    path = run_dir / "last.pt"
    if not path.is_file():
        return {"epoch": -1, "history": [], "best_score": [-1.0, -float("inf")], "epochs_without_gain": 0}
    saved = checkpoint.load(path, map_location=device)
    load_weights(model, saved, path)
    if adversary is not None:
        adversary.load_state_dict(saved["adversary"])
    seeds.set_rng_state(saved["rng"] if world.rank == 0 else saved["other_ranks_rng"][world.rank - 1])
    return {k: saved[k] for k in ("epoch", "stage", "history", "best_score", "epochs_without_gain",
                                  "optimizer", "scaler")}


class WithSourceTargets(Dataset):
    """``dataset``'s items with each image's source target for ``adversary`` (-1: none) appended."""

    def __init__(self, dataset, adversary: SourceAdversary):
        self.dataset, self.manifest, self.labels = dataset, dataset.manifest, dataset.labels
        self.targets = adversary.source_targets([r.label for r in dataset.manifest],
                                                [r.source for r in dataset.manifest])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], int(self.targets[index]))


def train_epoch(model: torch.nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, config: ClassifierConfig, device: torch.device,
                desc: str = "train", progress: bool = True, stop=None, adversary: SourceAdversary | None = None,
                reversal_weight: float = 0.0) -> tuple[float, float, dict]:
    """One pass over ``loader`` with augmentation; returns mean loss and accuracy (over all
    ranks), and with an ``adversary`` (its gradient reversed and scaled by ``reversal_weight``)
    its mean loss and accuracy (``adversary_loss``, ``adversary_accuracy``). Raises
    KeyboardInterrupt, on every rank alike, when ``stop`` was requested on any."""
    core = getattr(model, "module", model)
    set_training_mode(core)
    totals = torch.zeros(6, dtype=torch.float64)  # loss sum, correct, seen; adversary: loss sum, correct, seen
    pooled = []
    hook = core.head.register_forward_hook(lambda module, inputs, output: pooled.append(inputs[0])) \
        if adversary is not None else None
    bar = tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress)
    try:
        for images, labels, *targets in bar:
            if distributed.anyone(stop is not None and stop.requested):
                raise KeyboardInterrupt("stop requested")
            images = augment(images.to(device, non_blocking=True), config.augment)
            if config.style_augment:
                images = restyle(images)
            labels = labels.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            pooled.clear()
            with devices.autocast(device, config.precision):
                logits = model(images)
                loss = F.cross_entropy(logits, labels)
                if adversary is not None:
                    adv_sum, adv_seen, adv_correct = adversary(reverse_gradient(pooled[0], reversal_weight),
                                                               labels, targets[0].to(device))
                    totals[3:] += torch.tensor([adv_sum.item(), adv_correct, adv_seen], dtype=torch.float64)
                    loss_total = loss + adv_sum / len(labels)
                else:
                    loss_total = loss
            scaler.scale(loss_total).backward()
            scaler.step(optimizer)
            scaler.update()
            totals[:3] += torch.tensor([loss.item() * len(labels), (logits.argmax(1) == labels).sum().item(),
                                        len(labels)], dtype=torch.float64)
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}")
    finally:
        if hook is not None:
            hook.remove()
    loss_sum, correct, seen, adv_loss, adv_correct, adv_seen = distributed.total(totals).tolist()
    extra = ({"adversary_loss": adv_loss / adv_seen if adv_seen else None,
              "adversary_accuracy": adv_correct / adv_seen if adv_seen else None} if adversary is not None else {})
    return loss_sum / seen, correct / seen, extra


def evaluate_loss(model: CXRClassifier, dataset: CXRDataset, batch_size: int,
                  device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on ``dataset``."""
    engine = ProbabilityEngine(model, dataset.size, device, "pytorch")  # new weights every epoch: no graph
    probabilities = torch.from_numpy(engine.dataset(dataset, batch_size))
    loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), dataset.labels).item()
    return loss, (probabilities.argmax(1) == dataset.labels).float().mean().item()


def _log_epoch(writer: SummaryWriter, record: dict, optimizer: torch.optim.Optimizer) -> None:
    step = record["epoch"] + 1
    for split in ("train", "val"):
        if record[f"{split}_loss"] is None:
            continue
        writer.add_scalar(f"loss/{split}", record[f"{split}_loss"], step)
        writer.add_scalar(f"accuracy/{split}", record[f"{split}_accuracy"], step)
    for name in ("adversary_loss", "adversary_accuracy", "adversary_weight"):
        if record.get(name) is not None:
            writer.add_scalar(f"adversary/{name.removeprefix('adversary_')}", record[name], step)
    for group in optimizer.param_groups:
        writer.add_scalar(f"lr/{group['name']}", group["lr"], step)
    writer.flush()
