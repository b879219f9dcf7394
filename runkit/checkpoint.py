"""Atomic checkpoint files: written to a temporary name, then renamed over the target."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .resources import RecordingFile, resource_error, writing


def atomic_save(obj, path: Path | str) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``; temporary files that a
    killed earlier writer left beside it are removed first. A full disk is a one-line
    :class:`runkit.resources.NoSpaceError` naming ``path``."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with writing(path), open(tmp, "wb") as fh:
            out = RecordingFile(fh)
            try:
                torch.save(obj, out)
            except RuntimeError:
                if out.error is not None:  # torch hides the write's OSError in a RuntimeError
                    raise resource_error(out.error, path) from None
                raise
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> None:
    """Delete ``.<name>.<pid>.tmp`` files beside ``path`` whose writing process no longer runs
    (a SIGKILL during a save leaves one behind; nothing else can)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def load(path: Path | str, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save`, with a clear error when absent or broken."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for a damaged file
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from None
