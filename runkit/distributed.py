"""Training on several processes under ``torchrun``: one process per device, gradients averaged by
DistributedDataParallel, rank 0 the only writer.

Without torchrun (no ``WORLD_SIZE`` in the environment, or 1) everything here is a no-op and a
run is exactly a single-process run. Under torchrun the process group comes from the environment
torchrun sets: NCCL when CUDA is present (each rank on ``cuda:LOCAL_RANK``), else gloo on CPU.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from contextlib import ExitStack
from pathlib import Path

import torch
import torch.distributed as dist

from .device import pick_device
from .rundir import CONFIG, RUNTIME, RunLock, open_run, read_json

# Long enough for rank 0 to evaluate a validation split while the others wait in a collective;
# short enough that a rank that died without a word does not hang the others for long.
TIMEOUT = timedelta(minutes=int(os.environ.get("CXR_DIST_TIMEOUT_MIN", "30")))
LAUNCH_HINT = ("start it with torchrun, which sets them: torchrun --nproc_per_node N $(which cxr) … "
               "(several machines: also --nnodes M --rdzv-endpoint HOST:PORT)")


class DistributedSetupError(RuntimeError):
    """The environment asks for several processes but does not say how to reach them."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The :class:`World` torchrun describes in the environment (a single process without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise DistributedSetupError(f"WORLD_SIZE={size} but {', '.join(missing)} not set: {LAUNCH_HINT}")
    return World(int(os.environ["RANK"]), size, int(os.environ["LOCAL_RANK"]))


def start(device_name: str = "auto") -> tuple[World, torch.device]:
    """Join the process group (if any) and return this rank's world and device.

    ``auto`` and ``cuda`` become ``cuda:LOCAL_RANK`` under torchrun on a GPU machine.
    """
    world = world_from_env()
    device = pick_device(device_name)
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        if torch.cuda.device_count() < world.local_rank + 1:
            raise DistributedSetupError(f"local rank {world.local_rank} needs GPU {world.local_rank} but this "
                                        f"machine has {torch.cuda.device_count()}; lower --nproc_per_node")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT,
                                device_id=device if device.type == "cuda" else None)
    return world, device


@contextlib.contextmanager
def session(device_name: str = "auto"):
    """``(world, device)`` of :func:`start` for the block; the process group is left at its end
    unless an enclosing block joined it (a pipeline running several trainings keeps one group)."""
    joined_here = not dist.is_initialized()
    world, device = start(device_name)
    try:
        yield world, device
    finally:
        if joined_here and dist.is_initialized():
            dist.destroy_process_group()


def mean(values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged over all ranks (itself in a single process)."""
    if not dist.is_initialized():
        return values
    values = values.to(_collective_device(), copy=True)
    dist.all_reduce(values)
    return values / dist.get_world_size()


def total(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over all ranks."""
    if not dist.is_initialized():
        return values
    values = values.to(_collective_device(), copy=True)
    dist.all_reduce(values)
    return values


def _collective_device() -> torch.device:
    """Where NCCL wants the tensors of a collective (gloo takes CPU tensors)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def anyone(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. a stop request one rank received)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([int(flag)], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in a single process)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def from_main(obj):
    """Rank 0's ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_resume_world(saved: int, world: World, path) -> None:
    """Refuse to resume a run written by a different number of processes."""
    if saved != world.size:
        raise ValueError(f"{path}: written by {saved} process(es), resumed with {world.size}; resume with "
                         f"--nproc_per_node {saved} (each process's random state is in the checkpoint, and "
                         f"with {world.size} the global batch and the order of images would change)")


def claim_run(world: World, run_dir: Path, config: dict, *, runtime: dict, batch_size: int, resume: bool,
              overwrite: bool, resumable_keys: tuple[str, ...], after=None, hold: ExitStack | None = None) -> None:
    """Rank 0 claims ``run_dir`` (:func:`runkit.rundir.open_run`) for ``config``, recording
    ``runtime`` plus, under torchrun, the world size and global batch; a resume with another world
    size is refused first. ``after()`` then runs on rank 0 too. Every rank gets any error.
    With ``hold``, rank 0 first takes the folder's :class:`~runkit.rundir.RunLock` and keeps it
    until ``hold`` closes (the end of the run): a second process is refused before any write."""
    if world.distributed:
        runtime = {**runtime, "world_size": world.size, "global_batch_size": batch_size * world.size}

    def claim() -> None:
        if hold is not None:
            hold.enter_context(RunLock(run_dir))
        if resume and (run_dir / CONFIG).is_file():
            recorded = read_json(run_dir / CONFIG).get(RUNTIME, {})
            check_resume_world(recorded.get("world_size", 1), world, run_dir)
        open_run(run_dir, {**config, RUNTIME: runtime}, overwrite=overwrite, resume=resume,
                 resumable_keys=resumable_keys)
        if after:
            after()

    on_main(world, claim)


def on_main(world: World, fn):
    """``fn()`` run by rank 0 only; every rank returns its result or raises its error."""
    result = error = None
    if world.is_main:
        try:
            result = fn()
        except Exception as exc:  # handed to every rank, so none waits for a partner that left
            error = exc
    result, error = from_main((result, error))
    if error is not None:
        raise error
    return result


def wrap(module: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel when there are several ranks, else itself."""
    if not world.distributed:
        return module
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None)
