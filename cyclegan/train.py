"""The training loop: run directory, TensorBoard scalars and grids, checkpoints, exact resume."""
from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image
from tqdm import tqdm

from runkit import distributed
from runkit.checkpoint import atomic_save, load
from runkit.device import precision_record, tune_for
from runkit.interrupts import deferred_interrupts
from runkit.resources import memory_guard
from runkit.rundir import mark_finished, runs_root
from runkit.seed import rng_state, seed_everything, set_rng_state

from .config import GANConfig
from .data import Domain, load_domains, to_uint8
from .model import CycleGAN, NonFiniteLossError
from .realism.features import cxr_features, load_feature_network
from .realism.measures import checkerboard, distribution_realism

CHECKPOINT = "checkpoint.pt"
SAMPLES = "samples"
RUNS_ROOT = runs_root("gan")
GRID_COLUMNS = ("real A", "fake B", "rec A", "real B", "fake A", "rec B")
# Settings a resumed run may change: extending `iterations` also re-plans the LR decay from there.
RESUMABLE = ("iterations", "device", "precision", "log_every", "sample_every", "checkpoint_every",
             "realism_every")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training after a checkpoint was written."""


def default_run_dir(config: GANConfig) -> Path:
    return RUNS_ROOT / config.profile


def sample_grid(columns: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """One row per fixed sample of :meth:`CycleGAN.translate`'s columns: real A | fake B | rec A |
    real B | fake A | rec B, in [0, 1]."""
    count = min(len(c) for c in columns)
    tiles = torch.stack([c[:count] for c in columns], dim=1).flatten(0, 1)  # row-major: sample, then column
    return make_grid(tiles.add(1).div(2).clamp(0, 1), nrow=len(GRID_COLUMNS), padding=2, pad_value=1)


class RealismProbe:
    """The realism of G_A's translations of a fixed subset of domain A (centre crops) against all of
    domain B's images, on the fixed CXR feature network, logged under ``realism/``: the Fréchet
    distance, precision and recall of ``fake_B``, of the untranslated ``real_A`` and of real B's
    other half (the floor), and the checkerboard score of ``fake_B`` and ``real_B``."""

    def __init__(self, domain_A: Domain, domain_B: Domain, count: int):
        self.net, _ = load_feature_network()
        self.real_A = domain_A.fixed(count)
        real_B = to_uint8(domain_B.fixed(len(domain_B)).images).squeeze(1).numpy()
        self.features_B = cxr_features(self.net, real_B)
        self.features_A = cxr_features(self.net, to_uint8(self.real_A.images).squeeze(1).numpy())
        self.checkerboard_B = checkerboard(real_B)["mean"]
        self.skipped = None

    def log(self, model: CycleGAN, writer: SummaryWriter, step: int) -> None:
        fake_B = to_uint8(model.translate_A(*self.real_A)).squeeze(1).numpy()
        measured = distribution_realism(cxr_features(self.net, fake_B), self.features_B, self.features_A)
        names = {"synthetic": "fake_B", "parents (baseline)": "real_A", "real target, other half (floor)": "floor"}
        for measure, block in (("frechet", measured["frechet_distance"]), ("pr", measured["precision_recall"])):
            if "skipped" in block:
                if self.skipped is None:
                    self.skipped = block["skipped"]
                    writer.add_text("realism/skipped", self.skipped, step)
                continue
            for key, name in names.items():
                if measure == "frechet":
                    writer.add_scalar(f"realism/frechet_{name}", block[key], step)
                else:
                    writer.add_scalar(f"realism/precision_{name}", block[key]["precision"], step)
                    writer.add_scalar(f"realism/recall_{name}", block[key]["recall"], step)
        writer.add_scalar("realism/checkerboard_fake_B", checkerboard(fake_B)["mean"], step)
        writer.add_scalar("realism/checkerboard_real_B", self.checkerboard_B, step)


def train(config: GANConfig, run_dir: Path | str | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True) -> Path:
    """Train (or with ``resume`` continue) a CycleGAN in ``run_dir`` (default ``runs/gan/<profile>``).

    Returns the run directory, which then holds ``config.json``, TensorBoard events,
    ``checkpoint.pt``, ``samples/*.png`` and ``finished.json``. Raises
    :class:`TrainingInterrupted` after saving on Ctrl-C/SIGTERM, :class:`NonFiniteLossError`
    (keeping the last good checkpoint) when a loss stops being finite.
    """
    with distributed.session(config.device) as (world, device), ExitStack() as hold, memory_guard(
            "training the CycleGAN", config.batch_size, config.image_size, device,
            "lower --batch-size (or --image-size, --ngf) and rerun with --resume"):
        return _train(config, Path(run_dir or default_run_dir(config)), world, device, resume=resume,
                      overwrite=overwrite, progress=progress and world.is_main, hold=hold)


def _train(config: GANConfig, run_dir: Path, world: distributed.World, device: torch.device, *,
           resume: bool, overwrite: bool, progress: bool, hold: ExitStack) -> Path:
    domain_A, domain_B = load_domains(config, progress)
    tune_for(device)
    seed_everything(config.seed)
    model = CycleGAN(config, device, world)  # whatever it refuses, it refuses before the run folder is claimed
    probe = RealismProbe(domain_A, domain_B, config.realism_images) if world.is_main and config.realism_every else None
    if world.rank:
        seed_everything(config.seed + world.rank)  # each rank's own image-pool draws
    data_rng = torch.Generator().manual_seed(config.seed)  # the same on every rank: see Domain.batch
    distributed.claim_run(world, run_dir, config.to_dict(), runtime=precision_record(device, config.precision),
                          batch_size=config.batch_size, resume=resume, overwrite=overwrite,
                          resumable_keys=RESUMABLE, hold=hold)
    start = _restore(model, data_rng, run_dir / CHECKPOINT, config, world) if resume else 0
    # On resume, TensorBoard hides events logged after the checkpoint (steps > start).
    writer = SummaryWriter(str(run_dir), purge_step=start + 1 if start else None) if world.is_main else None
    try:
        _loop(model, domain_A, domain_B, data_rng, writer, probe, run_dir, start, world, progress)
    finally:
        if writer:
            writer.close()
    if world.is_main:
        mark_finished(run_dir, {"iterations": config.iterations, "checkpoint": CHECKPOINT})
    return run_dir


def _restore(model: CycleGAN, data_rng: torch.Generator, path: Path, config: GANConfig,
             world: distributed.World) -> int:
    """Load ``path`` into ``model`` and the RNGs (this rank's share); the iteration to continue
    from (0 if none)."""
    if not path.is_file():
        return 0  # interrupted before its first checkpoint: start over
    state = load(path, map_location=model.device)
    model.load_state_dict(state, path)
    own = state if world.rank == 0 else state["other_ranks"][world.rank - 1]
    model.pool_fake_A.load_state_dict(own["pool_fake_A"], model.device)
    model.pool_fake_B.load_state_dict(own["pool_fake_B"], model.device)
    set_rng_state(own["rng"])
    data_rng.set_state(state["data_rng"])
    if state["iteration"] > config.iterations:
        raise ValueError(f"{path}: already at iteration {state['iteration']}, beyond --iterations "
                         f"{config.iterations}; pass a larger --iterations to extend the run")
    return state["iteration"]


def _save(model: CycleGAN, data_rng: torch.Generator, path: Path, iteration: int,
          world: distributed.World) -> None:
    """Rank 0 writes the checkpoint, with every rank's RNG state and image pools."""
    per_rank = distributed.gather({"rng": rng_state(), "pool_fake_A": model.pool_fake_A.state_dict(),
                                   "pool_fake_B": model.pool_fake_B.state_dict()})
    if world.is_main:
        atomic_save({**model.state_dict(), **per_rank[0], "other_ranks": per_rank[1:], "world_size": world.size,
                     "data_rng": data_rng.get_state(), "iteration": iteration,
                     "config": model.config.to_dict()}, path)


def _loop(model: CycleGAN, domain_A: Domain, domain_B: Domain, data_rng: torch.Generator,
          writer: SummaryWriter | None, probe: RealismProbe | None, run_dir: Path, start: int,
          world: distributed.World, progress: bool) -> None:
    """Train from ``start``; only rank 0 (``writer`` and ``probe`` given) logs, draws samples,
    measures realism and saves."""
    cfg = model.config
    checkpoint = run_dir / CHECKPOINT
    log = _MainRankLog(model, writer, probe, run_dir, domain_A, domain_B, start) if writer else None
    draw = dict(size=cfg.batch_size * world.size, generator=data_rng, part=(world.rank, world.size))
    saved_at = start
    bar = tqdm(range(start, cfg.iterations), initial=start, total=cfg.iterations, disable=not progress,
               desc=f"CycleGAN {cfg.image_size}px", unit="it")
    with deferred_interrupts() as stop:
        for iteration in bar:
            try:
                batch_A, batch_B = domain_A.batch(**draw), domain_B.batch(**draw)
                losses = model.step(batch_A.images, batch_B.images, batch_A.masks, batch_B.masks)
            except NonFiniteLossError as exc:
                kept = f"{checkpoint} (iteration {saved_at})" if saved_at else "no checkpoint yet"
                raise NonFiniteLossError(f"{exc} at iteration {iteration + 1}; training stopped, "
                                         f"last good checkpoint kept: {kept}") from None
            done = iteration + 1
            if log:
                log.after(done, losses, bar)
            stopping = distributed.anyone(stop.requested)  # a signal to any rank stops them all
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations or stopping:
                _save(model, data_rng, checkpoint, done, world)
                saved_at = done
            if stopping:
                if writer:
                    writer.flush()
                raise TrainingInterrupted(f"interrupted at iteration {done}; checkpoint saved to "
                                          f"{checkpoint}; continue with --resume")


class _MainRankLog:
    """What rank 0 records after a step: loss scalars and speed, sample grids, realism."""

    def __init__(self, model: CycleGAN, writer: SummaryWriter, probe: RealismProbe | None, run_dir: Path,
                 domain_A: Domain, domain_B: Domain, start: int):
        self.model, self.writer, self.probe, self.samples = model, writer, probe, run_dir / SAMPLES
        self.fixed = domain_A.fixed(model.config.n_samples), domain_B.fixed(model.config.n_samples)
        self.samples.mkdir(exist_ok=True)
        self.logged_at, self.logged_time = start, time.perf_counter()

    def after(self, done: int, losses: dict, bar: tqdm) -> None:
        cfg = self.model.config
        last = done == cfg.iterations
        if done % cfg.log_every == 0 or last:
            self._scalars(done, losses, bar)
        if done % cfg.sample_every == 0 or last:
            (real_A, mask_A), (real_B, mask_B) = self.fixed
            grid = sample_grid(self.model.translate(real_A, real_B, mask_A, mask_B))
            self.writer.add_image("samples/" + " | ".join(GRID_COLUMNS), grid, done)
            save_image(grid, self.samples / f"iter_{done:06d}.png")
        if self.probe and (done % cfg.realism_every == 0 or last):
            self.probe.log(self.model, self.writer, done)

    def _scalars(self, done: int, losses: dict, bar: tqdm) -> None:
        now = time.perf_counter()
        values = {name: loss.item() for name, loss in losses.items()}
        for name, value in values.items():
            self.writer.add_scalar(f"loss/{name}", value, done)
        self.writer.add_scalar("lr", self.model.lr, done)
        self.writer.add_scalar("iterations_per_s", (done - self.logged_at) / (now - self.logged_time), done)
        bar.set_postfix({k: f"{values[k]:.3f}" for k in ("G_A", "D_A", "cycle_A")})
        self.logged_at, self.logged_time = done, now
