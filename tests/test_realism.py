"""The checkerboard measure on real images, validated both ways, and the resize-convolution
generator that avoids the pattern."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrdata import CXRDataset, Manifest
from cyclegan.data import to_uint8, to_unit_range
from cyclegan.networks import ResnetGenerator, init_weights
from cyclegan.realism import checkerboard, checkerboard_scores

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def real(cxr3) -> np.ndarray:
    """40 real covid and 40 real normal training images at 96 px."""
    chosen = cxr3.select(split="train", label="covid").records[:40] + cxr3.select(split="train", label="normal").records[:40]
    return CXRDataset(Manifest(chosen), 96, progress=False).images


def checkerboarded(images: np.ndarray, amplitude: int) -> np.ndarray:
    """``images`` plus the period-2 and period-4 pattern two stride-2 transposed convs imprint."""
    y, x = np.mgrid[:images.shape[1], :images.shape[2]]
    pattern = amplitude * (np.where((x % 2) ^ (y % 2), 1, -1) + np.where((x // 2 % 2) ^ (y // 2 % 2), 1, -1))
    return np.clip(images.astype(int) + pattern, 0, 255).astype(np.uint8)


def test_real_images_score_near_their_floor_and_checkerboards_far_above(real):
    covid, normal = checkerboard(real[:40]), checkerboard(real[40:])
    assert 0.5 < covid["mean"] < 3 and 0.5 < normal["mean"] < 3  # real images of two sources: one floor
    assert abs(covid["mean"] - normal["mean"]) < 1
    faint = checkerboard_scores(checkerboarded(real, 2))  # ±4 grey levels at most: hard to see
    assert faint.min() > 10 * covid["mean"], faint.min()
    strong = checkerboard_scores(checkerboarded(real, 8))
    assert strong.mean() > faint.mean()  # more pattern, higher score
    with pytest.raises(ValueError, match="multiple of 4"):
        checkerboard_scores(real[:, :95, :95])


def test_resize_upsampling_imprints_less_checkerboard_than_transposed_convolutions(real):
    """At initialisation, before any training could hide it, a transposed-conv generator's outputs
    carry the pattern; the resize-conv generator's do not (scores near the real floor)."""
    scores = {}
    for upsample in ("transpose", "resize"):
        torch.manual_seed(0)
        generator = init_weights(ResnetGenerator(1, ngf=16, n_blocks=2, upsample=upsample)).eval()
        with torch.no_grad():
            out = generator(to_unit_range(torch.from_numpy(real[:16]).unsqueeze(1)))
        assert out.shape == (16, 1, 96, 96)
        scores[upsample] = checkerboard(to_uint8(out).squeeze(1).numpy())["mean"]
    assert scores["transpose"] > 3 * scores["resize"], scores
