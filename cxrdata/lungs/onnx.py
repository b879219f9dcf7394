"""The lung segmenter as one ONNX graph: ``image`` ``(batch, 1, S, S)`` in [0, 1] → ``logits``
``(batch, folds, S, S)``, one channel per fold model, checked against our own outputs."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .segmenter import Segmenter

TOLERANCE = 1e-3  # logits; ONNX Runtime sums in other orders (a wrong graph differs by whole units)


class FoldLogits(nn.Module):
    """Every fold model's logits, stacked along the channels."""

    def __init__(self, segmenter: Segmenter):
        super().__init__()
        self.folds = nn.ModuleList(copy.deepcopy(model).float().cpu() for model in segmenter.models)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([fold(image) for fold in self.folds], dim=1)


def write_segmenter_onnx(segmenter: Segmenter, path: Path, opset: int) -> None:
    example = torch.rand(2, 1, segmenter.image_size, segmenter.image_size)
    program = torch.onnx.export(FoldLogits(segmenter).eval(), (example,), input_names=["image"],
                                output_names=["logits"], opset_version=opset, dynamo=True,
                                dynamic_shapes={"image": {0: torch.export.Dim("batch")}}, verbose=False)
    program.save(str(path))


def check_segmenter_onnx(path: Path, segmenter: Segmenter, images: np.ndarray) -> dict:
    """ONNX Runtime's logits against ours on ``images`` ``(N, 1, S, S)`` float32 in [0, 1]."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(["logits"], {"image": images})[0]
    with torch.no_grad():
        ours = FoldLogits(segmenter).eval()(torch.from_numpy(images)).numpy()
    largest = float(np.abs(theirs - ours).max())
    return {"checked": True, "images": int(len(images)), "largest_difference": largest, "tolerance": TOLERANCE,
            "ok": largest <= TOLERANCE}
