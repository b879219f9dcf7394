"""FLOP counting by hand for each layer kind."""
from __future__ import annotations

import torch
from torch import nn

from runkit import flops
from runkit.flops import forward_flops, matmul_kernels


def test_conv_flops_by_hand():
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)  # 16×16 → 8×8
    assert forward_flops(conv, torch.zeros(2, 3, 16, 16)) == 2 * (2 * 8 * 8 * 8) * 3 * 3 * 3


def test_grouped_conv_and_linear_flops_by_hand():
    model = nn.Sequential(nn.Conv2d(4, 4, 1, groups=2), nn.Flatten(), nn.Linear(4 * 5 * 5, 10))
    conv = 2 * (1 * 4 * 5 * 5) * 2
    linear = 2 * 100 * 10
    assert forward_flops(model, torch.zeros(1, 4, 5, 5)) == conv + linear


def test_transposed_conv_flops_by_hand():
    up = nn.ConvTranspose2d(6, 3, kernel_size=3, stride=2, padding=1, output_padding=1)  # 4×4 → 8×8
    assert forward_flops(up, torch.zeros(1, 6, 4, 4)) == 2 * 6 * 4 * 4 * 3 * 3 * 3


def test_every_matmul_kernel_computes_the_product():
    a, b = torch.randn(48, 48), torch.randn(48, 48)
    exact = a.double() @ b.double()
    # the forward error bound of a float32 dot product of length k: k·eps·Σ|a_i b_i|
    bound = a.shape[1] * torch.finfo(torch.float32).eps * (a.double().abs() @ b.double().abs())
    kernels = matmul_kernels(a, b)
    assert "torch.mm" in kernels
    for name, kernel in kernels.items():
        product = kernel()
        product = product.to_dense() if product.is_mkldnn else product
        assert ((product.double() - exact).abs() <= bound).all(), name
    wrong = (a @ b.T).double()  # the bound is tight enough to reject a kernel that computes another product
    assert not ((wrong - exact).abs() <= bound).all()


def test_matmul_ceiling_is_the_fastest_kernels_rates(monkeypatch):
    measured = {"slow": [100.0, 300.0, 110.0], "fast": [200.0, 210.0, 190.0]}  # max 300 is not the median
    monkeypatch.setattr(flops, "matmul_rates", lambda *args, **kwargs: measured)
    assert flops.fastest(measured) == "fast"
    assert flops.matmul_gflops(n=64, repeats=3) == measured["fast"]


def test_matmul_rates_time_every_kernel_each_repeat():
    rates = flops.matmul_rates(n=64, repeats=3)
    assert "torch.mm" in rates and all(len(r) == 3 and min(r) > 0 for r in rates.values())
