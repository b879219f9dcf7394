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


def test_a_checksum_mismatch_stops_decoding_and_names_the_file(cxr3):
    import dataclasses

    import pytest

    from cxrdata.manifest import ChecksumError, Manifest

    record = dataclasses.replace(cxr3[0], sha256="0" * 64)
    with pytest.raises(ChecksumError, match=record.file.name):
        CXRDataset(Manifest([record]), 16, progress=False)
