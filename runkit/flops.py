"""FLOPs counted from layer shapes, and the machine's measured matmul rate as a ceiling.

A convolution costs ``2 · C_out · H_out · W_out · (C_in / groups) · k_h · k_w`` FLOPs (one
multiply and one add per MAC); a transposed convolution ``2 · C_in · H_in · W_in · (C_out /
groups) · k_h · k_w``; a linear layer ``2 · in · out`` per row. Norms, activations and padding
are left out (they are a few percent and not what a matmul ceiling measures). A backward pass
costs twice its forward (gradients for inputs and for weights).
"""
from __future__ import annotations

import time

import torch
from torch import nn


CONV_AND_LINEAR = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def layer_inputs(model: nn.Module, example: torch.Tensor,
                 kinds: tuple[type, ...] = CONV_AND_LINEAR) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """``(layer, input, output)`` of every layer of the given kinds in ``model(example)``, in call order."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, inputs, output: seen.append((m, inputs[0], output)))
             for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def forward_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``model`` on ``example``, from its conv and linear layers."""
    total = 0
    for module, x, output in layer_inputs(model, example):
        if isinstance(module, nn.ConvTranspose2d):
            kh, kw = module.kernel_size
            total += 2 * x.shape[0] * x.shape[2] * x.shape[3] * module.in_channels * \
                (module.out_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += 2 * output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += 2 * (x.numel() // module.in_features) * module.in_features * module.out_features
    return total


def matmul_gflops(n: int = 2048, repeats: int = 5, dtype=torch.float32, device="cpu") -> list[float]:
    """Measured GFLOP/s of ``n``×``n`` fp32 matrix products (2·n³ FLOPs each), one per repeat."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    torch.mm(a, b)  # warm-up
    rates = []
    for _ in range(repeats):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        rates.append(2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return rates
