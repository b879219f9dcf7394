"""Seconds per training iteration at several sizes, on random images (no data loading)."""
from __future__ import annotations

import torch

from runkit.device import pick_device, tune_for
from runkit.seed import seed_everything
from runkit.timing import timed

from .config import GANConfig
from .model import CHANNELS, CycleGAN

BENCH_SIZES = (64, 128, 256)


def seconds_per_iteration(config: GANConfig, size: int, reps: int = 3, warmup: int = 1) -> dict:
    """Timing summary (median, min, max, all; seconds) of ``reps`` full training iterations at
    ``size`` px after ``warmup``."""
    seed_everything(config.seed)
    device = pick_device(config.device)
    tune_for(device)
    model = CycleGAN(config.replace(size=size), device)
    shape = (config.batch_size, CHANNELS, size, size)
    real_A, real_B = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    return timed(lambda: model.step(real_A, real_B), reps, warmup, device)
