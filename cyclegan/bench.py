"""Seconds per training iteration at several sizes, on random images (no data loading; in the
lungs region with a fixed lung-like mask), and the time the same convolutions take alone (what a
step could reach if nothing else cost)."""
from __future__ import annotations

import torch
from torch import nn

from runkit.device import pick_device, tune_for
from runkit.flops import layer_inputs
from runkit.seed import seed_everything
from runkit.timing import timed

from .config import GANConfig
from .model import CHANNELS, CycleGAN, build_discriminator, build_generator

BENCH_SIZES = (64, 128, 256)
REFERENCE_PASSES = 6  # per image and iteration, each network type: the reference step's forwards


def seconds_per_iteration(config: GANConfig, size: int, reps: int = 3, warmup: int = 1) -> dict:
    """Timing summary (median, min, max, all; seconds) of ``reps`` full training iterations at
    ``size`` px after ``warmup``."""
    seed_everything(config.seed)
    device = pick_device(config.device)
    tune_for(device)
    model = CycleGAN(config.replace(image_size=size), device)
    shape = (config.batch_size, CHANNELS, size, size)
    real_A, real_B = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    masks = lung_like_masks(shape) if config.region == "lungs" else None
    return timed(lambda: model.step(real_A, real_B, masks, masks), reps, warmup, device)


def lung_like_masks(shape: tuple[int, ...]) -> torch.Tensor:
    """Two upright blocks covering about 45 % of each image, as a lung view's mask does."""
    masks = torch.zeros(shape)
    side = shape[-1]
    top, bottom = side // 10, side - side // 20
    masks[..., top:bottom, side // 20:side * 9 // 20] = 1
    masks[..., top:bottom, side * 11 // 20:side * 19 // 20] = 1
    return masks


def convolution_seconds(config: GANConfig, size: int, reps: int = 3, warmup: int = 1) -> float:
    """Seconds the reference iteration's convolutions take when each runs alone: every conv
    layer of a generator and a discriminator, forward and full backward at the shape it sees,
    median of ``reps``, summed and times the six passes of each network: the reference step if
    norms, activations, padding, losses and the optimizer were free. (Batching passes, as
    :meth:`CycleGAN.step` does, can beat it: bigger batches run convolutions faster.)"""
    device = pick_device(config.device)
    tune_for(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    example = torch.zeros(config.batch_size, CHANNELS, size, size, device=device)
    total = 0.0
    for net in (build_generator(config), build_discriminator(config)):
        net.to(device=device, memory_format=memory_format)
        for layer, seen, _ in layer_inputs(net, example, (nn.Conv2d, nn.ConvTranspose2d)):
            x = torch.randn(seen.shape, device=device).contiguous(memory_format=memory_format).requires_grad_()

            def forward_backward(layer=layer, x=x):
                out = layer(x)
                out.backward(torch.ones_like(out))

            total += timed(forward_backward, reps, warmup, device)["median"]
    return REFERENCE_PASSES * total
