"""Running out of a resource is one line that names it: disk space (or a file-size limit, or a
read-only folder) while writing, memory while training or predicting.

Writers wrap their writes in :func:`writing`; training and inference loops wrap their steps in
:func:`memory_guard`. Both raise errors whose message is the whole story, for
:mod:`runkit.errors` to print as one line (``--debug`` still shows the traceback).
"""
from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path

NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class _Sentence(OSError):
    def __str__(self) -> str:  # the sentence alone, without "[Errno N]"
        return self.strerror


class NoSpaceError(_Sentence):
    """A write failed because the disk (or quota, or file-size limit) is full."""


class ReadOnlyError(_Sentence):
    """A write failed because the folder is read-only."""


class OutOfMemoryError(RuntimeError):
    """Training or inference ran out of (GPU or CPU) memory; the message says what to lower."""


def _free(path: Path) -> str:
    for folder in (path, *path.parents):
        if folder.exists():
            free = shutil.disk_usage(folder).free
            return f"{free / 2**20:.1f} MiB free" if free < 2**30 else f"{free / 2**30:.1f} GiB free"
    return "free space unknown"


def resource_error(exc: OSError, path: Path | str) -> OSError:
    """``exc`` as a one-line :class:`NoSpaceError` or :class:`ReadOnlyError` naming ``path``, or
    ``exc`` itself when it is another error."""
    path = Path(path)
    if exc.errno in NO_SPACE:
        what = "file size limit reached" if exc.errno == errno.EFBIG else "no space left on device"
        return NoSpaceError(exc.errno, f"{what} writing {path} ({_free(path.parent)}); free space and rerun "
                                       "(with --resume where the command has it): nothing partial was kept")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyError(exc.errno, f"cannot write {path}: {path.parent} is read-only or not writable "
                                        f"({exc.strerror}); choose another output folder or fix its permissions")
    return exc


@contextmanager
def writing(path: Path | str):
    """Turn a full disk or read-only folder while writing ``path`` into a one-line error."""
    try:
        yield
    except (NoSpaceError, ReadOnlyError):
        raise
    except OSError as exc:
        error = resource_error(exc, path)
        if error is exc:
            raise
        raise error from None


class RecordingFile:
    """A binary file that keeps the ``OSError`` of a failed write (torch wraps it in a bare
    RuntimeError), so the caller can report the real cause."""

    def __init__(self, fh):
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name):
        return getattr(self.fh, name)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA's and the CPU allocator's out-of-memory errors."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc)))


@contextmanager
def memory_guard(doing: str, batch_size: int, image_size: int, device, lower: str):
    """Turn running out of memory while ``doing`` into a one-line :class:`OutOfMemoryError`."""
    try:
        yield
    except OutOfMemoryError:
        raise
    except (RuntimeError, MemoryError) as exc:
        if not (isinstance(exc, MemoryError) or is_out_of_memory(exc)):
            raise
        raise OutOfMemoryError(f"out of memory {doing} on {device} (batch {batch_size}, {image_size} px); "
                               f"{lower}") from None
