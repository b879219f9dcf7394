"""Take a trained model elsewhere: ONNX (the whole inference path in one graph) and safetensors
(weights without pickle), with ``preprocess.json``, ``example.py`` and the run's model card.

The ONNX graph maps grayscale images ``(batch, 1, size, size)`` in [0, 1] to class
probabilities: the input normalisation, any equalisation and box masking are inside it, as in
the model. A run that sees a region of each image (``--region``) takes the image's lung mask as a
second input, ``lungs``, and applies the region inside the graph; the lung segmenter comes with it
as ``lungs.onnx`` (every fold model's logits) with ``lung_folds.json`` (the fold model of each image
the tool knows a patient for), and ``preprocess.json`` and ``example.py`` say how a mask is made
from them. Each graph is checked with ``onnx.checker`` and, where onnxruntime is
installed, against our own outputs on the run's real test images. An export is written to a
temporary folder and moved into place only when complete.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cxrdata import CXRDataset, Manifest, manifest_path
from cxrdata.lungs.cache import fitted_masks
from cxrdata.lungs.onnx import check_segmenter_onnx, write_segmenter_onnx
from cxrdata.lungs.regions import MARGIN, REGION_NOTES, apply_region
from cxrdata.lungs.segmenter import default_segmenter
from runkit import rundir
from runkit.resources import writing

from classifier.evaluation.model_card import write_model_card
from classifier.model.backbones import CXRClassifier
from classifier.inference.probabilities import OPSET, TOLERANCE, Probabilities
from classifier.inference.runs import known_patients, load_run_model, run_config, trained_classes

FORMATS = ("onnx", "safetensors")
EXPORT_ROOT = rundir.runs_root("export")
CHECKED_IMAGES = 64  # test images compared between ONNX Runtime and PyTorch
LUNG_FOLDS = "lung_folds.json"


class ExportError(ValueError):
    """An export cannot be made or does not reproduce the model; the message says why."""


class RegionProbabilities(Probabilities):
    """A region model's graph: the image and its lung mask in, the region applied, probabilities out."""

    def forward(self, image: torch.Tensor, lungs: torch.Tensor) -> torch.Tensor:
        return self.model(apply_region(image, lungs, self.model.region)).softmax(1)


def graph_of(model: CXRClassifier) -> tuple[Probabilities, tuple[str, ...]]:
    """What an export of ``model`` computes, and the names of its inputs."""
    if model.region == "full":
        return Probabilities(model).eval(), ("image",)
    return RegionProbabilities(model).eval(), ("image", "lungs")


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
    out = Path(out) if out is not None else EXPORT_ROOT / run_dir.resolve().name
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already holds an export; pass --overwrite to replace it, or --out another folder")
    model, size = load_run_model(run_dir, torch.device("cpu"))
    model = model.float().eval()  # a bf16-trained run exports in float32
    with rundir.staged_folder(out) as staging:
        checks = {}
        region = model.region != "full"
        if "onnx" in formats:
            write_onnx(model, size, staging / "model.onnx")
            checks["onnx"] = check_onnx(staging / "model.onnx", model, sample_inputs(config, size, region, progress))
            if region:
                checks["lungs_onnx"] = export_segmenter(staging / "lungs.onnx", config, progress)
                rundir.write_json(staging / LUNG_FOLDS, lung_folds(config))
        if "safetensors" in formats:
            write_safetensors(model, staging / "model.safetensors")
        rundir.write_json(staging / "config.json", {
            **config, "image_size": size, "exported_from": str(run_dir.resolve()), "head": model.head_kind,
            "classes": trained_classes(run_dir), "formats": list(formats),
            **({"segmenter_sha256": default_segmenter().checksum} if region else {})})
        rundir.write_json(staging / "preprocess.json", preprocess(size, model))
        rundir.write_bytes(staging / "example.py", (EXAMPLE_REGION if region else EXAMPLE).encode("utf-8"))
        rundir.write_json(staging / "checks.json", checks)
        write_model_card(run_dir, staging / "MODEL_CARD.md", export_dir=staging, checks=checks)
    return out


def write_onnx(model: CXRClassifier, size: int, path: Path) -> None:
    """The inference path as one ONNX graph, with a dynamic batch axis, checked by ``onnx.checker``."""
    import onnx

    graph, names = graph_of(model)
    examples = (torch.rand(2, 1, size, size), (torch.rand(2, 1, size, size) > 0.5).float())[:len(names)]
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(graph, examples, input_names=list(names), output_names=["probabilities"],
                                opset_version=OPSET, dynamo=True, verbose=False,
                                dynamic_shapes={name: {0: batch} for name in names})
    with writing(path):
        program.save(str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: onnx.checker refuses the graph ({str(exc).splitlines()[0]})") from None


def sample_inputs(config: dict, size: int, lungs: bool, progress: bool) -> dict[str, np.ndarray] | None:
    """Up to :data:`CHECKED_IMAGES` of the run's real test images, ``(N, 1, size, size)`` in [0, 1],
    as the graph's inputs (with their lung masks when ``lungs``)."""
    try:
        test = Manifest.read(manifest_path(config["dataset"])).select(split="test")
    except (OSError, ValueError):
        return None
    chosen = Manifest(test.records[:CHECKED_IMAGES], name="export-check")
    images = CXRDataset(chosen, size, progress=progress).images
    if not len(images):
        return None
    inputs = {"image": images[:, None].astype(np.float32) / 255.0}
    if lungs:
        inputs["lungs"] = fitted_masks(chosen, size, default_segmenter(), progress)[:, None].astype(np.float32)
    return inputs


def lung_folds(config: dict) -> dict[str, int]:
    """The fold model of each file the tool knows a patient for (the run's and the project's
    manifests), by the file's sha256: the export then segments such a file as its split did."""
    segmenter = default_segmenter()
    return {sha: segmenter.fold_for(patient, sha) for sha, patient in sorted(known_patients(config).items())}


def export_segmenter(path: Path, config: dict, progress: bool) -> dict:
    """``lungs.onnx``: the lung segmenter's fold models, checked against ours on the run's test images."""
    segmenter = default_segmenter()
    with writing(path):
        write_segmenter_onnx(segmenter, path, OPSET)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {"checked": False, "why": "onnxruntime is not installed"}
    test = Manifest.read(manifest_path(config["dataset"])).select(split="test")
    images = CXRDataset(Manifest(test.records[:8], name="lungs-check"), segmenter.image_size, progress=progress).images
    result = check_segmenter_onnx(path, segmenter, images[:, None].astype(np.float32) / 255.0)
    if not result["ok"]:
        raise ExportError(f"{path}: ONNX Runtime's lung logits differ from the segmenter's by "
                          f"{result['largest_difference']:.2e} (tolerance {result['tolerance']:.0e}): the export is "
                          "wrong")
    return result


def check_onnx(path: Path, model: CXRClassifier, inputs: dict[str, np.ndarray] | None) -> dict:
    """ONNX Runtime's probabilities against ours on ``inputs`` (the graph's inputs by name); raises
    :class:`ExportError` when they differ by more than :data:`TOLERANCE`. Skipped (and said so)
    without onnxruntime or images."""
    if inputs is None:
        return {"checked": False, "why": "the run's test images could not be read"}
    try:
        import onnxruntime
    except ImportError:
        return {"checked": False, "why": "onnxruntime is not installed (pip install onnxruntime); the file was "
                                         "written and passed onnx.checker"}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(["probabilities"], inputs)[0]
    graph, names = graph_of(model)
    with torch.no_grad():
        ours = graph(*(torch.from_numpy(inputs[name]) for name in names)).numpy()
    largest = float(np.abs(theirs - ours).max())
    count = len(inputs["image"])
    if not largest <= TOLERANCE:
        raise ExportError(f"{path}: ONNX Runtime's probabilities differ from the model's by {largest:.2e} on "
                          f"{count} test images (tolerance {TOLERANCE:.1e}): the export is wrong")
    return {"checked": True, "images": int(count), "largest_difference": largest, "tolerance": TOLERANCE,
            "onnxruntime": onnxruntime.__version__}


def write_safetensors(model: CXRClassifier, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with writing(path):
        save_file(state, str(path))


def preprocess(size: int, model: CXRClassifier) -> dict:
    """How a file becomes the graph's inputs, for a user in another language."""
    spec = {
        "input": {"name": "image", "shape": ["batch", 1, size, size], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": "probabilities", "shape": ["batch", 3], "classes": ["normal", "covid", "pneumonia"]},
        "steps": [
            "read the file; DICOM: apply the rescale and invert MONOCHROME1; 16-bit: scale to 8 bits",
            "convert to 8-bit grayscale (alpha composited on black)",
            f"centre-crop to a square (the shorter side), then resize to {size} x {size} with Lanczos filtering",
            "divide by 255 to get [0, 1]",
        ],
        "inside_the_graph": {"repeat_to_3_channels": True, "mean": list(model.spec.mean), "std": list(model.spec.std),
                             "equalize": model.input.equalize, "hide_lungs": model.input.hide_lungs,
                             "region": model.region},
    }
    if model.region != "full":
        segmenter = default_segmenter()
        spec["lungs_input"] = {"name": "lungs", "shape": ["batch", 1, size, size], "dtype": "float32",
                               "values": [0.0, 1.0]}
        spec["inside_the_graph"]["region_applied"] = f"{REGION_NOTES[model.region]} (dilation {MARGIN:g} of the side)"
        spec["lungs"] = {"graph": "lungs.onnx", "size": segmenter.image_size, "folds": segmenter.folds,
                         "segmenter_sha256": segmenter.checksum, "steps": [
                             f"the 8-bit grayscale image, uncropped, resized to {segmenter.image_size} x "
                             f"{segmenter.image_size} (bilinear, antialiased) and divided by 255",
                             f"lungs.onnx gives each fold model's logits; take the fold {LUNG_FOLDS} gives the "
                             "file's sha256 (hex), else int(sha256 of that hex string)[:8 hex digits], 16) mod folds",
                             "resize those logits to the image's own size (bilinear); lungs where they are >= 0",
                             "drop the pieces smaller than 1 % of the image",
                             f"centre-crop and resize like the image (0/255, Lanczos, {size} x {size}); lungs where "
                             ">= 128: the lungs input"]}
    return spec


EXAMPLE_REGION = '''"""Classify one chest X-ray with the exported model, which sees part of each image and takes its
lung mask from the exported lung segmenter: python example.py IMAGE (needs onnxruntime, Pillow,
numpy and scipy). The masks follow preprocess.json; Pillow's resizing differs from the PyTorch the
tool uses in the last bits, so a mask may differ by a few edge pixels from the tool's."""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image
from scipy import ndimage

here = Path(__file__).parent
spec = json.loads((here / "preprocess.json").read_text())
size, seg = spec["input"]["shape"][-1], spec["lungs"]["size"]
gray = Image.open(sys.argv[1]).convert("L")


def square(image, resample):
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), resample)


def run(graph, inputs):
    return onnxruntime.InferenceSession(str(here / graph), providers=["CPUExecutionProvider"]).run(None, inputs)[0]


small = np.asarray(gray.resize((seg, seg), Image.BILINEAR), dtype=np.float32) / 255.0
logits = run("lungs.onnx", {"image": small[None, None]})[0]
digest = hashlib.sha256(Path(sys.argv[1]).read_bytes()).hexdigest()
known = json.loads((here / "lung_folds.json").read_text())
fold = known.get(digest, int(hashlib.sha256(digest.encode()).hexdigest()[:8], 16) % len(logits))
mask = np.asarray(Image.fromarray(logits[fold]).resize(gray.size, Image.BILINEAR)) >= 0
labels, _ = ndimage.label(mask)
kept = np.bincount(labels.ravel()) >= 0.01 * mask.size
kept[0] = False
lungs = np.asarray(square(Image.fromarray(kept[labels].astype(np.uint8) * 255), Image.LANCZOS)) >= 128
image = np.asarray(square(gray, Image.LANCZOS), dtype=np.float32) / 255.0
probabilities = run("model.onnx", {"image": image[None, None], "lungs": lungs[None, None].astype(np.float32)})[0]
for name, p in zip(spec["output"]["classes"], probabilities):
    print(f"{name:10s} {p:.3f}")
'''

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
