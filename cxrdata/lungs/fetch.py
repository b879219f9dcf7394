"""Fetch the human lung masks from V7 Labs' pinned commit, one file per mask, for a user without
``../shared``: each upstream PNG is checked against its sha256, rendered at its corpus image's size
(grey levels, bilinear, thresholded at 128: the recipe the shared masks were made with) and
checked against the manifest's pixel checksum before it is written, atomically. A mask already
there with the right pixels is skipped, so an interrupted fetch continues."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..download import ResumingHTTP, fetch_verified
from ..manifest import Manifest, Record
from .cache import save_mask
from .human import V7_COMMIT, MaskError, pixels_sha256

V7_MASKS = ("https://raw.githubusercontent.com/v7labs/covid-19-xray-dataset/"
            f"{V7_COMMIT}/annotations/all-images-semantic-masks")


def render(upstream: bytes, width: int, height: int) -> np.ndarray:
    """An upstream mask at the corpus image's size, as bool."""
    with Image.open(io.BytesIO(upstream)) as image:
        return np.asarray(image.convert("L").resize((width, height), Image.Resampling.BILINEAR)) >= 128


def _have(target: Path, record: Record) -> bool:
    try:
        with Image.open(target) as image:
            return pixels_sha256(np.asarray(image.convert("L")) >= 128) == record.extra["mask_sha256"]
    except (OSError, ValueError):
        return False


def fetch_masks(manifest: Manifest, dest: Path, downloader: ResumingHTTP, retries: int = 3,
                base: str | None = None) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Fetch every mask of the mask ``manifest`` into ``dest`` (``base``: a mirror of V7's folder);
    returns the image ids fetched, skipped (already there), and failed with the reason."""
    fetched, skipped, failed = [], [], []
    for record in manifest:
        image_id, target = record.extra["image_id"], dest / record.extra["mask"]
        if target.is_file() and _have(target, record):
            skipped.append(image_id)
            continue
        url = f"{base or V7_MASKS}/{record.extra['v7_mask_id']}.png"
        work = dest / ".fetch" / f"{record.extra['v7_mask_id']}.png"
        try:
            upstream = fetch_verified(url, work, record.extra["v7_mask_sha256"], downloader, retries).read_bytes()
            mask = render(upstream, int(record.extra["width"]), int(record.extra["height"]))
            if pixels_sha256(mask) != record.extra["mask_sha256"]:
                raise MaskError(f"{url}: rendered at {record.extra['width']}×{record.extra['height']} its pixels "
                                "differ from the manifest's (another Pillow resizes otherwise)")
            save_mask(target, mask)
            fetched.append(image_id)
        except Exception as exc:  # network, hash and image errors of one mask never stop the others
            failed.append((image_id, f"{url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
        finally:
            work.unlink(missing_ok=True)
    return fetched, skipped, failed
