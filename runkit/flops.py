"""FLOPs counted from layer shapes, and the machine's measured matmul rate as a ceiling.

A convolution costs ``2 · C_out · H_out · W_out · (C_in / groups) · k_h · k_w`` FLOPs (one
multiply and one add per MAC); a transposed convolution ``2 · C_in · H_in · W_in · (C_out /
groups) · k_h · k_w``; a linear layer ``2 · in · out`` per row. Norms, activations and padding
are left out (they are a few percent and not what a matmul ceiling measures). A backward pass
costs twice its forward (gradients for inputs and for weights).
"""
from __future__ import annotations

import statistics
from typing import Callable

import torch
from torch import nn

from runkit.timing import timed


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


def matmul_kernels(a: torch.Tensor, b: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """Every kernel this build has for ``a @ b``, by name, each returning the product.

    ``torch.mm`` runs MKL (cuBLAS on CUDA). On CPU oneDNN, the library behind PyTorch's
    convolutions, has its own matrix product: on AMD CPUs, where MKL takes a slower code path,
    it is about twice as fast, so a ceiling from ``torch.mm`` alone would be far too low.
    (oneDNN returns its product in its own tensor format; ``.to_dense()`` converts it.)
    """
    kernels = {"torch.mm": lambda: torch.mm(a, b)}
    onednn = getattr(torch._C._nn, "mkldnn_linear", None)  # private: absent builds just skip it
    if onednn is not None and a.device.type == "cpu" and a.dtype == torch.float32 \
            and torch.backends.mkldnn.is_available():
        a_onednn, b_t = a.to_mkldnn(), b.t().contiguous()
        kernels["oneDNN"] = lambda: onednn(a_onednn, b_t, None)
    return kernels


def matmul_rates(n: int = 2048, repeats: int = 5, dtype=torch.float32,
                 device="cpu") -> dict[str, list[float]]:
    """Measured GFLOP/s of ``n``×``n`` matrix products (2·n³ FLOPs each), per kernel and repeat."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    kernels = matmul_kernels(a, b)
    rates = {name: [] for name in kernels}
    for kernel in kernels.values():
        kernel()  # warm-up
    for _ in range(repeats):  # interleaved, so drift on a busy machine hits every kernel alike
        for name, kernel in kernels.items():
            seconds = timed(kernel, reps=1, warmup=0, device=torch.device(device))["median"]
            rates[name].append(2 * n ** 3 / seconds / 1e9)
    return rates


def fastest(rates: dict[str, list[float]]) -> str:
    """The kernel of :func:`matmul_rates` with the highest median rate: the ceiling's."""
    return max(rates, key=lambda name: statistics.median(rates[name]))


def matmul_gflops(n: int = 2048, repeats: int = 5, dtype=torch.float32, device="cpu") -> list[float]:
    """The ceiling: measured GFLOP/s, one per repeat, of the fastest kernel (by median)."""
    rates = matmul_rates(n, repeats, dtype, device)
    return rates[fastest(rates)]
