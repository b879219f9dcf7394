"""``cxr`` with torch's default dtype set to float64, for the torchrun equality tests.

In float64 two ways of computing the same training step agree to ~1e-15, whatever the CPU's
kernels (AVX2, AVX-512, AMX), so a test can compare them without a tolerance tuned on one machine.
``CXR_TEST_FAULT`` breaks the synchronisation on purpose, to show that the tests would see it:
``no-all-reduce`` (ranks never average gradients) or ``same-slice`` (every rank trains on the
first slice of the global batch).
"""
import os

import torch

from cyclegan.data import Domain
from pipelines.cli import main
from runkit import distributed


def break_synchronisation(fault: str) -> None:
    if fault == "no-all-reduce":
        distributed.wrap = lambda module, world, device: module
    elif fault == "same-slice":
        batch = Domain.batch
        Domain.batch = lambda self, size, generator=None, part=(0, 1): batch(self, size, generator, (0, part[1]))
    else:
        raise SystemExit(f"CXR_TEST_FAULT={fault}: choose no-all-reduce or same-slice")


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    if os.environ.get("CXR_TEST_FAULT"):
        break_synchronisation(os.environ["CXR_TEST_FAULT"])
    main()
