"""Grad-CAM: a known answer on a toy model, frozen backbones, eval mode, batches, hooks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from classifier.evaluation.gradcam import GradCAM, border_area, border_share
from classifier.model.backbones import build_model
from classifier.model.freezing import freeze_backbone

pytestmark = pytest.mark.usefixtures("one_thread")


class Regions(nn.Module):
    """Channel 0 sees only the top-left quarter of the image, channel 1 only the bottom-right."""

    def forward(self, features):
        out = torch.zeros(features.shape[0], 2, *features.shape[-2:])
        h, w = features.shape[-2:]
        out[:, 0, : h // 2, : w // 2] = features[:, 0, : h // 2, : w // 2]
        out[:, 1, h // 2:, w // 2:] = features[:, 0, h // 2:, w // 2:]
        return out


class RegionModel(nn.Module):
    """Class 1 depends only on the top-left quarter, class 2 only on the bottom-right one."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 1, 1)
        self.regions = Regions()
        self.head = nn.Linear(2, 3)
        with torch.no_grad():
            self.stem.weight.fill_(1.0)
            self.stem.bias.zero_()
            self.head.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
            self.head.bias.zero_()

    def forward(self, images):
        x = F.relu(self.regions(self.stem(images)), inplace=True)  # in place after the target layer
        return self.head(x.mean(dim=(2, 3)))


def test_map_peaks_in_the_region_the_decision_depends_on():
    model = RegionModel()
    model.stem.requires_grad_(False)  # frozen layers below the target layer
    images = 0.5 + 0.5 * torch.rand(3, 1, 16, 20)  # non-square, bright everywhere
    with GradCAM(model, model.regions) as cam:
        top_left, _ = cam(images, [1, 1, 1])
        bottom_right, _ = cam(images, [2, 2, 2])
    assert top_left.shape == (3, 16, 20)
    for maps, rows, cols in [(top_left, slice(0, 8), slice(0, 10)), (bottom_right, slice(8, 16), slice(10, 20))]:
        inside = maps[:, rows, cols].sum(dim=(1, 2))
        assert torch.all(inside / maps.sum(dim=(1, 2)) > 0.9), "CAM mass outside the decisive region"
        peaks = maps.flatten(1).argmax(1)
        assert all(rows.start <= p // 20 < rows.stop and cols.start <= p % 20 < cols.stop for p in peaks.tolist())


def test_frozen_backbone_eval_mode_batch_and_no_grad():
    torch.manual_seed(0)
    model = build_model("resnet18", "none").double()  # float64: batch items agree to ~1e-12 on any CPU
    freeze_backbone(model)
    model.train()
    images = torch.rand(3, 1, 64, 96, dtype=torch.float64)
    with torch.no_grad(), GradCAM(model) as cam:
        maps, logits = cam(images)
        single, _ = cam(images[1:2], logits[1:2].argmax(1))
    assert maps.shape == (3, 64, 96) and logits.shape == (3, 3)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and torch.allclose(maps.amax(dim=(1, 2)), torch.ones(3))
    torch.testing.assert_close(single[0], maps[1], atol=1e-9, rtol=0)  # batch items do not interact
    assert model.training, "the model's mode is restored"
    assert all(p.grad is None for p in model.parameters()), "Grad-CAM left gradients on parameters"
    assert not model.cam_layer._forward_hooks, "hooks not released"
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(images), logits)  # the hook did not change the outputs


def test_border_share_measures_mass_near_the_edges():
    edge = torch.zeros(1, 20, 20)
    edge[:, :2, :] = 1.0
    centre = torch.zeros(1, 20, 20)
    centre[:, 8:12, 8:12] = 1.0
    even = torch.ones(1, 20, 20)
    assert border_share(edge).item() == 1.0
    assert border_share(centre).item() == 0.0
    assert abs(border_share(even).item() - border_area()) < 0.01
    assert torch.isnan(border_share(torch.zeros(1, 20, 20))).all()
