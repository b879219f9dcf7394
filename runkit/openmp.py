"""How OpenMP's threads wait, set before torch loads (it imports nothing heavy).

Threads that wait by sleeping rather than spinning: beside one other busy program on 2 cores,
spinning threads slowed a CycleGAN step about 3×, sleeping ones 1.6–1.8×, at a 4–14 % cost on an
idle machine (docs/results/2026-11-performance.md, "A busy machine"). An ``OMP_WAIT_POLICY`` already
set wins, and ``CXR_OMP_WAIT=spin`` restores OpenMP's default.
"""
from __future__ import annotations

from typing import MutableMapping


def set_openmp_wait(environ: MutableMapping[str, str]) -> None:
    """Put the project's OpenMP wait policy into ``environ`` (a process's, or a child's)."""
    if environ.get("CXR_OMP_WAIT") == "spin":
        environ.pop("OMP_WAIT_POLICY", None)
    else:
        environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
