"""Seconds per training iteration at several sizes, on random images (no data loading)."""
from __future__ import annotations

import statistics
import time

import torch

from runkit.device import pick_device, tune_for
from runkit.seed import seed_everything

from .config import GANConfig
from .model import CHANNELS, CycleGAN

BENCH_SIZES = (64, 128, 256)


def seconds_per_iteration(config: GANConfig, size: int, reps: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``reps`` full training iterations at ``size`` px after ``warmup``."""
    seed_everything(config.seed)
    device = pick_device(config.device)
    tune_for(device)
    model = CycleGAN(config.replace(size=size), device)
    shape = (config.batch_size, CHANNELS, size, size)
    real_A, real_B = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    times = []
    for rep in range(warmup + reps):
        start = time.perf_counter()
        model.step(real_A, real_B)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if rep >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)
