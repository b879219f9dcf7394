"""Helpers the tests share (fixtures live in conftest.py): a synthetic-style set made from real
images, and the tiny settings of the experiment tests."""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path

import torch

from PIL import Image

from classifier.training.data import SYNTHETIC_SOURCE
from cxrdata import Manifest
from cxrdata.manifest import sha256_of

TINY_CLASSIFIER = {"epochs": 1, "image_size": 32, "batch_size": 4}
TINY_GAN = {"image_size": 32, "ngf": 8, "n_blocks": 2, "ndf": 8, "iterations": 3, "sample_every": 2,
            "checkpoint_every": 2, "log_every": 1, "n_samples": 2}


def make_synthetic(folder: Path, manifest: Manifest, n: int, split: str = "train", parents: str = "train") -> Path:
    """A synthesis-style manifest: ``n`` real normal images of the ``parents`` split, mirrored, as
    'synthetic' covid PNGs (keeping their patient ids), with paths relative to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, source in enumerate(manifest.select(split=parents, label="normal").records[:n]):
        target = folder / "images" / f"synthetic-{i:03d}.png"
        target.parent.mkdir(exist_ok=True)
        with Image.open(source.file) as parent:  # new bytes, as a translated image has
            parent.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(target)
        records.append(dataclasses.replace(
            source, path=f"images/{target.name}", label="covid", split=split, source=SYNTHETIC_SOURCE,
            sha256=sha256_of(target), file=target,
            extra={"image_id": f"synthetic-{i:03d}", "source_image": source.path}))
    path = folder / "manifest.csv"
    Manifest(records, name="synthetic").write(path, ["image_id", "source_image"])
    return path


@contextmanager
def single_thread():
    """torch on one thread inside the block: tiny models run faster so on a 2-core machine, and two
    runs to be compared bit for bit must use the same thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
