"""Device choice and precision: ``--precision fp32 | bf16 | auto``.

* ``fp32``: no autocast anywhere.
* ``bf16``: autocast to bfloat16, on CUDA (needs a GPU with bf16) and on CPUs that compute bf16
  natively (AMX or AVX512-BF16; refused elsewhere, where it would be emulated and slower).
* ``auto``: CUDA mixed precision (bf16 where the GPU has it, else fp16 with loss scaling); on a
  CPU, bf16 where it is native if :data:`AUTO_CPU_BF16`, else fp32.
"""
from __future__ import annotations

import contextlib
import functools

import torch


class DeviceError(ValueError):
    """A device name that does not exist here; the message lists what does."""


def available() -> list[str]:
    """The device names this machine accepts."""
    return ["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
                              if torch.cuda.is_available() else [])


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as given.

    Raises :class:`DeviceError` naming the option and the devices that exist.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name}: not a device name; choose one of {', '.join(available())}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: CUDA is not available on this machine; choose one of "
                          f"{', '.join(available())}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s); choose one of "
                          f"{', '.join(available())}")
    return device


PRECISIONS = ("auto", "fp32", "bf16")
# Whether ``auto`` uses native bf16 on CPUs: only once bf16 runs are shown to train as well as fp32
# ones (docs/results/2026-11-performance.md, "bf16 on the CPU").
AUTO_CPU_BF16 = False


@functools.cache
def native_bf16() -> str | None:
    """The CPU feature that computes bf16 natively here (``AMX`` or ``AVX512-BF16``), or None."""
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return "AVX512-BF16"
    return None


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``device`` and ``precision`` (see the module docstring); None: fp32."""
    if precision not in PRECISIONS:
        raise DeviceError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise DeviceError("--precision bf16: this GPU has no bf16; use auto (fp16 with loss scaling) or fp32")
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "bf16" and native_bf16() is None:
        raise DeviceError("--precision bf16: this CPU computes bf16 only by emulation (no AMX or "
                          "AVX512-BF16), slower than fp32; use fp32 or auto")
    if precision == "bf16" or (AUTO_CPU_BF16 and native_bf16()):
        return torch.bfloat16
    return None


def precision_record(device: torch.device, precision: str = "auto") -> dict:
    """What a run computed in, for its config.json: the precision used and the CPU's bf16 support."""
    dtype = amp_dtype(device, precision)
    return {"precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype],
            "cpu_bf16": native_bf16()}


def autocast(device: torch.device, precision: str = "auto"):
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    dtype = amp_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str = "auto") -> torch.amp.GradScaler:
    """A gradient scaler that is active only for fp16 autocast (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device, precision) == torch.float16)


def tune_for(device: torch.device) -> None:
    """Library settings that pay on ``device`` (cuDNN autotuning on CUDA)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def adam(params, **options) -> torch.optim.Adam:
    """Adam in its fused form: one kernel for all parameters instead of a loop of small ops per
    tensor (the same update; on 2 CPU cores a resnet18 step's optimizer time fell 37 → 11 ms)."""
    return torch.optim.Adam(params, fused=True, **options)
