"""Take a trained model elsewhere: ONNX (the whole inference path in one graph) and safetensors
(weights without pickle), with ``preprocess.json``, ``example.py`` and the run's model card.

The ONNX graph maps grayscale images ``(batch, 1, size, size)`` in [0, 1] to class
probabilities: the input normalisation, any equalisation and lung masking are inside it, as in
the model. It is checked with ``onnx.checker`` and, where onnxruntime is installed, against our
own outputs on the run's real test images. An export is written to a temporary folder and moved
into place only when complete.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cxrdata import CXRDataset, Manifest, manifest_path
from runkit import rundir
from runkit.resources import writing

from classifier.evaluation.model_card import write_model_card
from classifier.model.backbones import CXRClassifier
from classifier.inference.runs import load_run_model, run_config, trained_classes

FORMATS = ("onnx", "safetensors")
OPSET = 18
# ONNX Runtime and PyTorch sum in other orders: probabilities may differ by accumulated rounding.
# 2**-13 is 1024 float32 ulps of 1.0, far below any real difference (a wrong export differs by > 1e-2).
TOLERANCE = 2.0 ** -13
EXPORT_ROOT = rundir.runs_root("export")
CHECKED_IMAGES = 64  # test images compared between ONNX Runtime and PyTorch


class ExportError(ValueError):
    """An export cannot be made or does not reproduce the model; the message says why."""


class Probabilities(nn.Module):
    """The model followed by softmax: what an exported graph computes."""

    def __init__(self, model: CXRClassifier):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image).softmax(1)


def parse_formats(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ExportError(f"--format {text!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    return chosen


def export_run(run_dir: Path | str, out: Path | str | None = None, formats: tuple[str, ...] = FORMATS,
               overwrite: bool = False, progress: bool = True) -> Path:
    """Export the finished classifier run ``run_dir`` into ``out`` (default ``runs/export/<run>``)."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)  # refuses a folder that is not a finished classifier run
    formats = parse_formats(",".join(formats))
    if config.get("region", "full") != "full":
        raise ExportError(f"{run_dir}: a --region {config['region']} run cannot be exported yet: its input needs "
                          "the lung segmenter's mask, which the exported graph does not compute; use "
                          "`cxr classify predict` or `serve` with the run itself")
    out = Path(out) if out is not None else EXPORT_ROOT / run_dir.resolve().name
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already holds an export; pass --overwrite to replace it, or --out another folder")
    model, size = load_run_model(run_dir, torch.device("cpu"))
    model = model.float().eval()  # a bf16-trained run exports in float32
    with rundir.staged_folder(out) as staging:
        checks = {}
        if "onnx" in formats:
            write_onnx(model, size, staging / "model.onnx")
            checks["onnx"] = check_onnx(staging / "model.onnx", model, sample_test_images(config, size, progress))
        if "safetensors" in formats:
            write_safetensors(model, staging / "model.safetensors")
        rundir.write_json(staging / "config.json", {
            **config, "image_size": size, "exported_from": str(run_dir.resolve()), "head": model.head_kind,
            "classes": trained_classes(run_dir), "formats": list(formats)})
        rundir.write_json(staging / "preprocess.json", preprocess(size, model))
        rundir.write_bytes(staging / "example.py", EXAMPLE.encode("utf-8"))
        rundir.write_json(staging / "checks.json", checks)
        write_model_card(run_dir, staging / "MODEL_CARD.md", export_dir=staging, checks=checks)
    return out


def write_onnx(model: CXRClassifier, size: int, path: Path) -> None:
    """The inference path as one ONNX graph, with a dynamic batch axis, checked by ``onnx.checker``."""
    import onnx

    example = torch.rand(2, 1, size, size)
    program = torch.onnx.export(Probabilities(model).eval(), (example,), input_names=["image"],
                                output_names=["probabilities"], opset_version=OPSET, dynamo=True,
                                dynamic_shapes={"image": {0: torch.export.Dim("batch")}}, verbose=False)
    with writing(path):
        program.save(str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: onnx.checker refuses the graph ({str(exc).splitlines()[0]})") from None


def sample_test_images(config: dict, size: int, progress: bool) -> np.ndarray | None:
    """Up to :data:`CHECKED_IMAGES` of the run's real test images, ``(N, 1, size, size)`` in [0, 1]."""
    try:
        test = Manifest.read(manifest_path(config["dataset"])).select(split="test")
    except (OSError, ValueError):
        return None
    chosen = Manifest(test.records[:CHECKED_IMAGES], name="export-check")
    images = CXRDataset(chosen, size, progress=progress, region=config.get("region", "full")).images
    return (images[:, None].astype(np.float32) / 255.0) if len(images) else None


def check_onnx(path: Path, model: CXRClassifier, images: np.ndarray | None) -> dict:
    """ONNX Runtime's probabilities against ours on ``images``; raises :class:`ExportError` when they
    differ by more than :data:`TOLERANCE`. Skipped (and said so) without onnxruntime or images."""
    if images is None:
        return {"checked": False, "why": "the run's test images could not be read"}
    try:
        import onnxruntime
    except ImportError:
        return {"checked": False, "why": "onnxruntime is not installed (pip install onnxruntime); the file was "
                                         "written and passed onnx.checker"}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(["probabilities"], {"image": images})[0]
    with torch.no_grad():
        ours = Probabilities(model).eval()(torch.from_numpy(images)).numpy()
    largest = float(np.abs(theirs - ours).max())
    if not largest <= TOLERANCE:
        raise ExportError(f"{path}: ONNX Runtime's probabilities differ from the model's by {largest:.2e} on "
                          f"{len(images)} test images (tolerance {TOLERANCE:.1e}): the export is wrong")
    return {"checked": True, "images": int(len(images)), "largest_difference": largest, "tolerance": TOLERANCE,
            "onnxruntime": onnxruntime.__version__}


def write_safetensors(model: CXRClassifier, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with writing(path):
        save_file(state, str(path))


def load_exported(folder: Path, config: dict) -> CXRClassifier:
    """The model of an exported folder, from ``model.safetensors`` and ``config.json``."""
    from safetensors.torch import load_file

    from classifier.model.backbones import build_model

    model = build_model(config["backbone"], "none", bool(config.get("hide_lungs")), bool(config.get("equalize")),
                        config.get("head", "linear"), config.get("region", "full"))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model


def preprocess(size: int, model: CXRClassifier) -> dict:
    """How a file becomes the graph's input, for a user in another language."""
    return {
        "input": {"name": "image", "shape": ["batch", 1, size, size], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": "probabilities", "shape": ["batch", 3], "classes": ["normal", "covid", "pneumonia"]},
        "steps": [
            "read the file; DICOM: apply the rescale and invert MONOCHROME1; 16-bit: scale to 8 bits",
            "convert to 8-bit grayscale (alpha composited on black)",
            f"centre-crop to a square (the shorter side), then resize to {size} x {size} with Lanczos filtering",
            "divide by 255 to get [0, 1]",
        ],
        "inside_the_graph": {"repeat_to_3_channels": True, "mean": list(model.spec.mean), "std": list(model.spec.std),
                             "equalize": model.input.equalize, "hide_lungs": model.input.hide_lungs},
    }


EXAMPLE = '''"""Classify one chest X-ray with the exported model: python example.py IMAGE
(needs onnxruntime and Pillow only)."""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

here = Path(__file__).parent
spec = json.loads((here / "preprocess.json").read_text())
size = spec["input"]["shape"][-1]
image = Image.open(sys.argv[1]).convert("L")
side = min(image.size)
left, top = (image.width - side) // 2, (image.height - side) // 2
square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
pixels = np.asarray(square, dtype=np.float32) / 255.0
session = onnxruntime.InferenceSession(str(here / "model.onnx"), providers=["CPUExecutionProvider"])
probabilities = session.run(["probabilities"], {"image": pixels[None, None]})[0][0]
for name, p in zip(spec["output"]["classes"], probabilities):
    print(f"{name:10s} {p:.3f}")
'''
