"""The ``cxr`` console script: chooses how OpenMP threads wait (:mod:`runkit.openmp`) before torch
loads, then runs ``cxr``."""
from __future__ import annotations

import os

from runkit.openmp import set_openmp_wait


def main() -> None:
    set_openmp_wait(os.environ)
    from pipelines.cli import main as cxr  # imports torch: after the policy is set

    cxr()
