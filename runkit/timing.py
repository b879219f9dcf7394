"""Wall-clock timing for benchmarks (medians of repetitions after warm-up, spread kept) and
peak memory."""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable

import torch


def summary(times: list[float]) -> dict:
    """Median, min, max and every repetition of ``times`` (seconds)."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "all": times}


def timed(step: Callable[[], object], reps: int, warmup: int = 1, device: torch.device | None = None) -> dict:
    """:func:`summary` of ``reps`` timed calls of ``step`` after ``warmup`` untimed ones (CUDA
    work is synchronised so it is counted)."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return summary(times)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
