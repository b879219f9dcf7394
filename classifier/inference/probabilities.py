"""Class probabilities where no gradient is needed: ONNX Runtime over the model's own graph on a CPU
that computes in float32, PyTorch elsewhere (CUDA and bf16 CPUs, where PyTorch's mixed precision
is the fast path, and Grad-CAM, which needs gradients).

Exporting a graph costs seconds (torch.export's decompositions: ~10 s for EfficientNet-Lite0 on 2
cores) and depends only on the architecture, not the weights. So the unoptimised graph of an
architecture is exported once and cached under ``$CXR_CACHE/onnx/``; each model fills it with its
own weights, and the graph is optimised (onnxscript, ~0.5 s) and cached beside it, named by the
weights' sha256, so a run is exported once (delete the folder to reclaim the space). Every
session is checked against PyTorch on the first images it scores. A model whose graph cannot be
made, or differs by more than :data:`TOLERANCE`, is scored by PyTorch, with one line saying why.
"""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cxrdata.cache import cache_dir
from runkit import device as devices, rundir

from classifier.model.backbones import CXRClassifier

ENGINES = ("auto", "onnxruntime", "pytorch")
ENGINE_HELP = ("What computes the probabilities: auto (ONNX Runtime on a CPU computing in float32, PyTorch "
               "on CUDA and bf16 CPUs), onnxruntime, or pytorch. Grad-CAM always uses PyTorch.")
OPSET = 18
# ONNX Runtime and PyTorch sum in other orders: probabilities may differ by accumulated rounding.
# 2**-13 is 1024 float32 ulps of 1.0, far below any real difference (a wrong graph differs by > 1e-2).
TOLERANCE = 2.0 ** -13
CHECKED = 8  # images of the first batch scored by both engines
GRAPH_FORMAT = 1  # bump when the cached graphs are made differently


class EngineError(ValueError):
    """The engine asked for cannot run here; the message names the option."""


class Probabilities(nn.Module):
    """The model followed by softmax: what an exported graph computes."""

    def __init__(self, model: CXRClassifier):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image).softmax(1)


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise EngineError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


class ProbabilityEngine:
    """Softmax probabilities ``(N, classes)`` of batches of images ``(N, 1, size, size)`` in [0, 1],
    as the model sees them (its region already applied). ``backend`` says which engine answers,
    ``reason`` why PyTorch does when ONNX Runtime was wanted."""

    def __init__(self, model: CXRClassifier, size: int, device: torch.device, engine: str = "auto",
                 say: Callable[[str], None] = tqdm.write):
        self.model, self.size, self.device = model.eval(), size, device
        self.session, self._say, self._checked = None, say, False
        self.reason = self._why_not_onnx(check_engine(engine))
        if self.reason is None:
            try:
                self.session = _session(model, size)
            except Exception as exc:  # the exporter and the optimiser raise many types
                self._fall_back(f"its graph could not be made ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200]})")

    @property
    def backend(self) -> str:
        return "pytorch" if self.session is None else "onnxruntime"

    def _why_not_onnx(self, engine: str) -> str | None:
        if engine == "pytorch":
            return "asked (--engine pytorch)"
        if self.device.type != "cpu" or devices.amp_dtype(self.device) is not None:
            if engine == "onnxruntime":
                raise EngineError(f"--engine onnxruntime: runs on the CPU in float32 only, and this model runs on "
                                  f"{self.device} in mixed precision; use --engine auto or --device cpu")
            return "the device computes in mixed precision"
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            if engine == "onnxruntime":
                raise EngineError("--engine onnxruntime: onnxruntime is not installed (pip install "
                                  "onnxruntime)") from None
            self._say("scoring with PyTorch: onnxruntime is not installed")
            return "onnxruntime is not installed"
        return None

    def _fall_back(self, reason: str) -> None:
        self.session, self.reason = None, reason
        self._say(f"scoring with PyTorch: {reason}")

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        images = torch.as_tensor(images, dtype=torch.float32)
        if self.session is None:
            return self._pytorch(images)
        feed = np.ascontiguousarray(images.numpy())
        theirs = self.session.run(["probabilities"], {"image": feed})[0]
        if not self._checked:
            self._checked = True
            ours = self._pytorch(images[:CHECKED])
            largest = float(np.abs(theirs[:CHECKED] - ours).max())
            if not largest <= TOLERANCE:
                self._fall_back(f"ONNX Runtime's probabilities differ from PyTorch's by {largest:.1e} (tolerance "
                                f"{TOLERANCE:.1e})")
                return self._pytorch(images)
        return theirs

    @torch.no_grad()
    def _pytorch(self, images: torch.Tensor) -> np.ndarray:
        with devices.autocast(self.device):
            return self.model(images.to(self.device)).float().softmax(1).cpu().numpy()

    def dataset(self, dataset: Dataset, batch_size: int, progress: bool = False, desc: str = "scoring") -> np.ndarray:
        """Probabilities of every image of ``dataset`` (items ``(image, label)``), in order."""
        batches = DataLoader(dataset, batch_size=batch_size)
        out = [self(images) for images, _ in tqdm(batches, desc=desc, unit="batch", leave=False,
                                                   disable=not progress)]
        return np.concatenate(out) if out else np.zeros((0, len(self.model.identity()["classes"])), np.float32)


def graph_key(model: CXRClassifier, size: int) -> str:
    """What decides a model's unoptimised graph: its architecture, image size and the exporter."""
    identity = {k: v for k, v in model.identity().items() if k != "region"}  # applied to inputs, not in the graph
    described = {"format": GRAPH_FORMAT, "identity": identity, "size": size, "opset": OPSET,
                 "architecture": repr(model), "torch": torch.__version__,
                 "onnxscript": _version("onnxscript"), "onnx_ir": _version("onnx_ir"),
                 "tensors": [(k, list(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def weights_key(model: CXRClassifier) -> str:
    """The sha256 of a model's tensors, in order."""
    digest = hashlib.sha256()
    for name, tensor in Probabilities(model).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def graph_paths(model: CXRClassifier, size: int) -> tuple[Path, Path]:
    """The cached unoptimised graph of the model's architecture, and the optimised graph with its weights."""
    stem = cache_dir() / "onnx" / f"{model.backbone_name}-{size}-{graph_key(model, size)[:16]}"
    return stem.with_suffix(".onnx"), stem.parent / f"{stem.name}-{weights_key(model)[:16]}.onnx"


def write_template(model: CXRClassifier, size: int, path: Path) -> None:
    """The unoptimised graph of ``model`` (a dynamic batch axis), its initializers named as in
    ``Probabilities(model).state_dict()``."""
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(Probabilities(model).eval(), (torch.rand(2, 1, size, size),),
                                input_names=["image"], output_names=["probabilities"], opset_version=OPSET,
                                dynamo=True, optimize=False, verbose=False, dynamic_shapes={"image": {0: batch}})
    rundir.write_bytes(path, program.model_proto.SerializeToString())


def filled_graph(model: CXRClassifier, template: Path):
    """The template's graph with ``model``'s weights, optimised: an ``onnx_ir`` model."""
    import onnx_ir as ir
    import onnxscript.optimizer

    graph = ir.load(str(template))
    state = Probabilities(model).state_dict()
    for name, value in graph.graph.initializers.items():
        tensor = state.get(name)
        if tensor is None or list(tensor.shape) != list(value.shape):
            raise ValueError(f"{template}: initializer {name} has no tensor of its shape in the model")
        tensor = tensor.detach().cpu()
        value.const_value = ir.tensor((tensor.float() if tensor.is_floating_point() else tensor).numpy().copy(),
                                      name=name)
    return onnxscript.optimizer.optimize(graph)


def _session(model: CXRClassifier, size: int):
    """An ONNX Runtime session of ``model``'s graph, made (and cached) where it is not yet."""
    import onnxruntime

    template, filled = graph_paths(model, size)
    if not filled.is_file():
        import onnx_ir as ir

        if not template.is_file():
            write_template(model, size, template)
        rundir.write_bytes(filled, ir.serde.serialize_model(filled_graph(model, template)).SerializeToString())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only: the optimiser's notes are not for users
    return onnxruntime.InferenceSession(str(filled), options, providers=["CPUExecutionProvider"])
