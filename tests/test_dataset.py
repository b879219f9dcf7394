"""The dataset decodes each image once and serves 1-channel float tensors in [0, 1]."""
from __future__ import annotations

import numpy as np
import torch

from conftest import few
from cxrdata import cache
from cxrdata.dataset import CXRDataset
from cxrdata.images import fit_square, read_grayscale


def test_items_are_one_channel_floats_with_labels(cxr3):
    subset = few(cxr3, "train", 2)
    data = CXRDataset(subset, 32, progress=False)
    image, label = data[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert [data[i][1] for i in range(len(data))] == subset.labels == [0, 0, 1, 1, 2, 2]
    expected = fit_square(read_grayscale(subset[3].file), 32)
    np.testing.assert_array_equal(data.uint8(3)[0].numpy(), expected)
    assert "covid=2" in repr(data)


def test_each_image_is_decoded_once_per_run(cxr3, monkeypatch):
    subset = few(cxr3, "val", 1)
    calls = []
    real = cache.decode
    monkeypatch.setattr(cache, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = CXRDataset(subset, 24, progress=False)
    for _ in range(3):  # three "epochs"
        [first[i] for i in range(len(first))]
    second = CXRDataset(subset, 24, progress=False)
    assert len(calls) == len(subset), "decoded again after the first pass"
    np.testing.assert_array_equal(first.images, second.images)
    assert list(cache.cache_dir().glob("*.npy")), "no cache file written"


def test_unusable_images_stop_loading_and_are_all_named(cxr3, tmp_path):
    import dataclasses

    import pytest

    from cxrdata import UnreadableImagesError
    from cxrdata.manifest import Manifest

    mismatched = dataclasses.replace(cxr3[0], sha256="0" * 64)
    missing = dataclasses.replace(cxr3[2], file=tmp_path / "gone.png")
    with pytest.raises(UnreadableImagesError, match=rf"2 of 3 image\(s\) .*{mismatched.file.name}: checksum "
                                                    r"mismatch.*gone.png: file not found"):
        CXRDataset(Manifest([mismatched, cxr3[1], missing]), 16, progress=False)
