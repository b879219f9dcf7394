"""What machine this is: the CPU's name and the vector features its float kernels use.

float32 results differ in the last bits between CPUs with other features (AVX2, AVX-512, AMX),
so a test run or a benchmark says which it ran on.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_tile")  # as /proc/cpuinfo names them
KERNEL_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_name() -> str:
    return _cpuinfo().get("model name") or platform.processor() or "unknown CPU"


def cpu_features() -> list[str]:
    """Those of :data:`FEATURES` this CPU has."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [f for f in FEATURES if f in flags]


def kernel_limits() -> dict[str, str]:
    """Environment variables set here that cap the ISA the math libraries use."""
    return {name: os.environ[name] for name in KERNEL_LIMITS if os.environ.get(name)}


def describe() -> str:
    """One line: CPU, its features, the kernels torch dispatches to, and any caps set."""
    limits = " ".join(f"{k}={v}" for k, v in kernel_limits().items())
    return (f"{cpu_name()}; features: {' '.join(cpu_features()) or 'none of ' + ', '.join(FEATURES)}; "
            f"torch {torch.__version__} kernels {torch.backends.cpu.get_cpu_capability()}"
            + (f"; caps: {limits}" if limits else ""))
