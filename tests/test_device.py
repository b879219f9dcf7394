"""runkit.device: the fused Adam makes the same update as torch's per-tensor Adam."""
from __future__ import annotations

import copy

import torch
from torch import nn

from runkit.device import adam


def test_fused_adam_matches_the_reference_loop():
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    reference, start = copy.deepcopy(ours), copy.deepcopy(ours)
    optimizers = (adam(ours.parameters(), lr=1e-2, betas=(0.5, 0.999)),
                  torch.optim.Adam(reference.parameters(), lr=1e-2, betas=(0.5, 0.999), foreach=False))
    for _ in range(5):
        x = torch.randn(2, 1, 8, 8)
        for model, optimizer in zip((ours, reference), optimizers):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), reference.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(ours[0].weight, start[0].weight)  # it did train
