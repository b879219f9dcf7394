"""Model factory, grayscale input, weights, freezing, augmentation and config checks."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

import classifier.training.augment as aug
import classifier.model.backbones as models
import classifier.model.checkpoints as checkpoints
import classifier.model.freezing as freezing
import classifier.model.registry as registry
import classifier.model.weights as weights
from classifier.config import ConfigError, make_config
from classifier.evaluation.gradcam import GradCAM
from classifier.model.backbones import build_model, WeightsError
from classifier.model.registry import BACKBONES
from classifier.model.inputs import hide_centre

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_backbone_builds_from_scratch_with_three_outputs(backbone):
    torch.manual_seed(0)
    model = build_model(backbone, "none").eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 64, 64))
    assert logits.shape == (2, 3)
    assert isinstance(model.cam_layer, torch.nn.Module)
    assert model.trunk_blocks() and all(model.head is not b for b in model.trunk_blocks())


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backbone 'resnet19'.*resnet18"):
        build_model("resnet19")


def test_grayscale_is_repeated_and_imagenet_normalised():
    layer = models.GrayscaleInput()
    image = torch.full((1, 1, 4, 4), 0.5)
    out = layer(image)
    assert out.shape == (1, 3, 4, 4)
    for channel, (mean, std) in enumerate(zip(registry.IMAGENET_MEAN, registry.IMAGENET_STD)):
        torch.testing.assert_close(out[0, channel], torch.full((4, 4), (0.5 - mean) / std))
    with pytest.raises(ValueError, match="1-channel"):
        layer(torch.rand(1, 3, 4, 4))


def test_weights_load_from_a_local_state_dict(tmp_path):
    reference = torchvision.models.resnet18()  # 1000-class head, like a downloaded ImageNet file
    with torch.no_grad():
        reference.conv1.weight.fill_(0.25)
    path = tmp_path / "resnet18-local.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("resnet18", str(path))
    assert torch.all(model.backbone.conv1.weight == 0.25)
    assert model.head.out_features == 3
    with pytest.raises(WeightsError, match="not a resnet50 state dict"):
        build_model("resnet50", str(path))
    with pytest.raises(WeightsError, match="no such file"):
        build_model("resnet18", str(tmp_path / "absent.pth"))


def test_imagenet_weights_offline_say_which_file_to_place_where(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(name, weights=None):
        if weights is not None:
            raise urllib.error.URLError("Name or service not known")
        return torchvision.models.get_model(name)

    monkeypatch.setattr(weights, "get_model", offline)
    with pytest.raises(WeightsError) as error:
        build_model("resnet18", "imagenet")
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "--weights none" in message


def test_freezing_trains_the_head_then_the_top_blocks():
    model = build_model("resnet18", "none")
    freezing.freeze_backbone(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"backbone.fc.weight", "backbone.fc.bias"}
    freezing.set_training_mode(model)
    assert not model.backbone.bn1.training and model.training  # frozen BN keeps its statistics
    top = freezing.unfreeze_top(model, 1)
    assert {id(p) for p in top} == {id(p) for p in model.backbone.layer4.parameters()}
    assert all(p.requires_grad for p in model.backbone.layer4.parameters())
    assert not any(p.requires_grad for p in model.backbone.layer3.parameters())


def test_checkpoint_of_another_backbone_is_refused():
    saved = checkpoints.checkpoint_payload(build_model("resnet18"))
    with pytest.raises(checkpoints.CheckpointMismatchError, match="backbone='resnet18'.*backbone='resnet50'"):
        checkpoints.load_weights(build_model("resnet50"), saved, "best.pt")


def test_augmentation_keeps_shape_and_repeats_with_the_seed():
    images = torch.rand(4, 1, 32, 32)
    settings = aug.AugmentSettings()
    torch.manual_seed(1)
    first = aug.augment(images, settings)
    torch.manual_seed(1)
    again = aug.augment(images, settings)
    torch.manual_seed(2)
    other = aug.augment(images, settings)
    assert first.shape == images.shape
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other)


def test_augmentation_settings_each_do_their_job():
    images = torch.rand(2, 1, 16, 16)
    still = aug.AugmentSettings(rotation=0, width_shift=0, height_shift=0, zoom=0, hflip=0)
    torch.testing.assert_close(aug.augment(images, still), images)
    flip = aug.AugmentSettings(rotation=0, width_shift=0, height_shift=0, zoom=0, hflip=1)
    torch.testing.assert_close(aug.augment(images, flip), images.flip(-1))
    with pytest.raises(ValueError, match="rotation"):
        aug.AugmentSettings(rotation=-1)


def test_hidden_lungs_make_the_centre_irrelevant():
    images = torch.rand(2, 1, 40, 40)
    hidden = hide_centre(images)
    assert torch.all(hidden[..., 6:34, 6:34] == 0)
    torch.testing.assert_close(hidden[..., :6, :], images[..., :6, :])
    model = build_model("resnet18", "none", hide_lungs=True).eval()
    changed = images.clone()
    changed[..., 6:34, 6:34] = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(images), model(changed))


def test_config_rejects_unknown_values_and_profiles_differ():
    cpu = make_config()
    assert (cpu.backbone, cpu.weights, cpu.head_epochs, cpu.unfreeze_blocks) == ("efficientnet_lite0", "imagenet", 3, 4)
    paper = make_config("paper")
    assert (paper.backbone, paper.weights, paper.image_size, paper.batch_size, paper.epochs, paper.lr) == \
        ("vgg16", "imagenet", 224, 8, 50, 1e-4)
    assert make_config(epochs=3, hflip=0.0).epochs == 3
    assert make_config(hflip=0.0).augment.hflip == 0.0
    for bad, match in [({"aug": "v4"}, "unknown aug 'v4'"), ({"backbone": "alexnet"}, "unknown backbone"),
                       ({"weights": "nowhere.pth"}, "weights 'nowhere.pth'"), ({"zoom": 2.0}, "zoom"),
                       ({"cam_class": "tumour"}, "cam_class"), ({"colour": 1}, "unknown setting")]:
        with pytest.raises(ConfigError, match=match):
            make_config(**bad)
    with pytest.raises(ConfigError, match="unknown profile"):
        make_config("gpu")
    assert make_config(hide_lungs=True, region="full").run_name() == "cxr3-v1-efficientnet_lite0-lungs-hidden"
    assert make_config().run_name() == "cxr3-v1-efficientnet_lite0-lungs-only"  # the cpu profile's region


def test_bench_reports_positive_rates_and_refuses_unknown_backbones():
    from click.testing import CliRunner

    from classifier.bench import bench_backbone
    from classifier.cli import classify_cli

    rates = bench_backbone("resnet18", size=32, batch_size=2, reps=1, warmup=0, device=torch.device("cpu"))
    assert set(rates) == {"train_images_per_s", "inference_images_per_s", "gradcam_ms_per_image"}
    assert all(v > 0 for v in rates.values())
    result = CliRunner().invoke(classify_cli, ["bench", "--backbones", "resnet18,lenet"])
    assert result.exit_code == 2 and "unknown backbone(s) lenet" in result.output


def test_train_help_explains_flips_and_profiles():
    from click.testing import CliRunner

    from classifier.cli import classify_cli

    text = CliRunner().invoke(classify_cli, ["train", "--help"], terminal_width=200).output
    assert "MIRROR ANATOMY" in text and "[cpu: efficientnet_lite0; paper: vgg16]" in text


class Toy(nn.Module):
    """A backbone of two convolutions and a 1000-class head, as a library model would come."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, 1000)

    def forward(self, x):
        return self.fc(self.blocks(x).mean((2, 3)))


def test_a_new_backbone_is_one_registry_entry(monkeypatch):
    monkeypatch.setitem(registry.BACKBONES, "toy", registry.Backbone(head="fc", cam_layer="blocks.2", trunk="blocks",
                                                                     builder=Toy))
    assert "toy" in registry.backbone_names()
    model = build_model("toy", "none", head="mlp64", region="lungs-only")
    images = torch.rand(2, 1, 32, 32)
    assert model(images).shape == (2, 3) and len(model.trunk_blocks()) == 2
    freezing.freeze_backbone(model)
    assert freezing.unfreeze_top(model, 1) == list(model.trunk_blocks()[-1].parameters())
    with GradCAM(model) as cam:
        maps, _ = cam(images, torch.tensor([0, 1]))
    assert maps.shape == (2, 32, 32)
    again = checkpoints.model_from_checkpoint(checkpoints.checkpoint_payload(model), "toy.pt").eval()
    assert torch.equal(again(images), model.eval()(images)) and again.region == "lungs-only"
    with pytest.raises(WeightsError, match="toy: no ImageNet weights"):
        build_model("toy", "imagenet")
