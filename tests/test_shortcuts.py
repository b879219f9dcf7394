"""Shortcut mitigations: histogram equalisation against the OpenCV formula, restyling, source-
balanced sampling weights, and the equalisation travelling with the model's checkpoint."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from classifier.model.backbones import build_model

from classifier.model.checkpoints import checkpoint_payload, load_weights, model_from_checkpoint
from classifier.model.inputs import equalize_histogram
from classifier.training.shortcuts import restyle, source_balanced_weights


def opencv_equalize(gray: np.ndarray) -> np.ndarray:
    """OpenCV's equalizeHist: (cdf - cdf_min) * 255 / (total - cdf_min), on 8-bit levels."""
    hist = np.bincount(gray.ravel(), minlength=256)
    cdf = hist.cumsum()
    low = cdf[hist > 0][0]
    return (cdf[gray] - low) * 255.0 / (cdf[-1] - low)


def test_equalisation_matches_the_opencv_formula_per_image():
    torch.manual_seed(0)
    batch = torch.rand(3, 1, 40, 30) ** torch.tensor([0.5, 2.0, 4.0]).view(3, 1, 1, 1)
    levels = (batch * 255).round()
    out = equalize_histogram(levels / 255)
    for i in range(3):
        expected = opencv_equalize(levels[i, 0].numpy().astype(np.int64))
        assert np.abs(out[i, 0].numpy() * 255 - expected).max() < 1e-3
    assert out.min() == 0 and out.max() == 1


def test_equalisation_removes_monotonic_intensity_differences_and_keeps_constant_images():
    torch.manual_seed(1)
    levels = torch.randperm(128)[:60].float() * 2  # 60 distinct even grey levels: halving keeps them apart
    image = levels[torch.randint(0, 60, (1, 1, 32, 32))] / 255
    darker = image * 0.5  # a different source's exposure: same order of levels, all distinct
    assert torch.allclose(equalize_histogram(image), equalize_histogram(darker), atol=1e-6)
    constant = torch.full((1, 1, 8, 8), 0.4)
    assert torch.equal(equalize_histogram(constant), constant)


def test_restyle_stays_in_range_changes_images_and_repeats_under_a_seed():
    torch.manual_seed(2)
    images = torch.rand(16, 1, 48, 48)
    torch.manual_seed(3)
    first = restyle(images)
    torch.manual_seed(3)
    second = restyle(images)
    assert torch.equal(first, second)
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1
    changed = (first - images).abs().flatten(1).amax(1) > 0.01
    assert changed.float().mean() > 0.8  # each of 7 changes hits an image with p 0.3-0.5


def test_source_balanced_weights_equalise_sources_within_each_class_and_keep_class_shares():
    labels = [0] * 10 + [1] * 6 + [2] * 4
    sources = ["nih"] * 9 + ["ieee"] + ["ieee"] * 4 + ["fig"] * 2 + ["nih"] * 4
    weights = source_balanced_weights(labels, sources).numpy()
    by_pair, by_class = Counter(), Counter()
    for w, y, s in zip(weights, labels, sources):
        by_pair[(y, s)] += w
        by_class[y] += w
    assert by_pair[(0, "nih")] == pytest.approx(by_pair[(0, "ieee")]) == pytest.approx(5.0)
    assert by_pair[(1, "ieee")] == pytest.approx(by_pair[(1, "fig")]) == pytest.approx(3.0)
    assert [by_class[k] for k in range(3)] == pytest.approx([10, 6, 4])


def test_equalize_is_part_of_the_model_and_its_checkpoint():
    model = build_model("resnet18", "none", equalize=True)
    saved = checkpoint_payload(model)
    assert saved["equalize"] is True
    assert model_from_checkpoint(saved, "x").input.equalize
    with pytest.raises(ValueError, match="equalize"):
        load_weights(build_model("resnet18", "none"), saved, "x")
    older = {k: v for k, v in checkpoint_payload(build_model("resnet18", "none")).items() if k != "equalize"}
    assert not model_from_checkpoint(older, "old.pt").input.equalize  # made before the setting existed
