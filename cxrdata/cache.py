"""Decode and resize each image once per (manifest, size), then reuse the uint8 array.

The cache is a ``.npy`` file under ``$CXR_CACHE`` (default ``.cache/cxr`` in the repository),
keyed by the manifest's files and checksums, the size and the cache format version. Checksums
are verified while decoding, so a cache is only ever built from the bytes the manifest names.
"""
from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .images import ImageReadError, fit_square, read_grayscale
from runkit.rundir import write_bytes

from .manifest import REPO_ROOT, ChecksumError, Manifest, Record, check_checksum

FORMAT_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("CXR_CACHE", REPO_ROOT / ".cache" / "cxr"))


def decode(record: Record, size: int, verify: bool = True) -> np.ndarray:
    """Read, check and resize one image to ``size``×``size`` ``uint8``."""
    if verify and record.file.is_file():  # a missing file is reported by read_grayscale
        check_checksum(record)
    return fit_square(read_grayscale(record.file), size)


def _each(work, manifest: Manifest, size: int, progress: bool, workers: int | None = None):
    """``work(record)`` for every record in order, on threads (Pillow releases the GIL while
    decoding), under a progress bar."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        yield from tqdm(pool.map(work, manifest.records), total=len(manifest), disable=not progress,
                        desc=f"decoding {manifest.name} @ {size}px", unit="img")


class UnreadableImagesError(ValueError):
    """Images of a manifest cannot be used; the message names them all (up to a limit)."""

    def __init__(self, manifest: Manifest, failed: list[tuple[Record, str]], shown: int = 5):
        self.failed = failed
        listed = "; ".join(reason for _, reason in failed[:shown])
        more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
        super().__init__(f"{len(failed)} of {len(manifest)} image(s) of {manifest.name} cannot be used: "
                         f"{listed}{more} (`cxr data verify -m <manifest>` lists every one)")


def decode_readable(manifest: Manifest, size: int, progress: bool = True, verify: bool = True,
                    workers: int | None = None) -> tuple[Manifest, np.ndarray, list[tuple[Record, str]]]:
    """Decode every readable image of ``manifest``; the unreadable ones (missing, corrupt, not an
    image, checksum mismatch) are left out and returned with the reason, so one bad file never
    stops the others. Returns the readable records, their images and ``(record, reason)`` pairs."""
    def attempt(record: Record) -> np.ndarray | str:
        try:
            return decode(record, size, verify)
        except (ImageReadError, ChecksumError) as exc:
            return str(exc)

    kept, images, failed = [], [], []
    for record, result in zip(manifest.records, _each(attempt, manifest, size, progress, workers)):
        if isinstance(result, str):
            failed.append((record, result))
        else:
            kept.append(record)
            images.append(result)
    stacked = np.stack(images) if images else np.empty((0, size, size), dtype=np.uint8)
    return Manifest(kept, name=manifest.name), stacked, failed


def decode_all(manifest: Manifest, size: int, verify: bool = True, progress: bool = True,
               workers: int | None = None) -> np.ndarray:
    """Decode every image of ``manifest``; raises :class:`UnreadableImagesError` naming every
    unreadable one (all are tried first, so one run of the command lists them all)."""
    _, images, failed = decode_readable(manifest, size, progress, verify, workers)
    if failed:
        raise UnreadableImagesError(manifest, failed)
    return images


def cache_key(manifest: Manifest, size: int) -> str:
    raw = f"v{FORMAT_VERSION}:{size}:{manifest.fingerprint()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def cached_images(manifest: Manifest, size: int, progress: bool = True, use_cache: bool = True) -> np.ndarray:
    """``(N, size, size)`` uint8 images of ``manifest``, decoded at most once per key."""
    if not use_cache:
        return decode_all(manifest, size, progress=progress)
    path = cache_dir() / f"{cache_key(manifest, size)}.npy"
    if path.is_file():
        try:
            images = np.load(path)
            if images.shape == (len(manifest), size, size) and images.dtype == np.uint8:
                return images
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    images = decode_all(manifest, size, progress=progress)
    buffer = io.BytesIO()
    np.save(buffer, images)
    write_bytes(path, buffer.getvalue())  # atomic: concurrent writers of one key each rename a whole file
    return images
