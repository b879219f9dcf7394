"""runkit.device: the fused Adam makes the same update as torch's per-tensor Adam; device names
are checked in one place and every command reports a bad one in one line."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from runkit.device import DeviceError, adam, pick_device


def test_fused_adam_matches_the_reference_loop():
    """In float64, so that the two implementations' rounding cannot reach the bound on any CPU."""
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).double()
    reference, start = copy.deepcopy(ours), copy.deepcopy(ours)
    optimizers = (adam(ours.parameters(), lr=1e-2, betas=(0.5, 0.999)),
                  torch.optim.Adam(reference.parameters(), lr=1e-2, betas=(0.5, 0.999), foreach=False))
    for _ in range(5):
        x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
        for model, optimizer in zip((ours, reference), optimizers):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), reference.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert not torch.allclose(ours[0].weight, start[0].weight)  # it did train


@pytest.mark.parametrize("name, message", [
    ("banana", "--device banana: not a device name; choose one of auto, cpu"),
    ("cuda:7", "--device cuda:7: "),
    ("mps", "--device mps: not a device name"),
])
def test_unknown_devices_are_refused_with_the_names_that_exist(name, message):
    with pytest.raises(DeviceError, match=message):
        pick_device(name)
    assert pick_device("cpu") == torch.device("cpu")
