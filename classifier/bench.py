"""Speed of each backbone on the current device: training and inference images/s, Grad-CAM ms."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from runkit import device as devices
from runkit.timing import timed

from classifier.evaluation.gradcam import GradCAM
from classifier.model.backbones import build_model


def bench_backbone(backbone: str, size: int = 224, batch_size: int = 8, reps: int = 3, warmup: int = 1,
                   device: torch.device | None = None) -> dict[str, float]:
    """Median over ``reps`` timed steps after ``warmup`` ones, random weights and images."""
    device = device or devices.pick_device()
    devices.tune_for(device)
    model = build_model(backbone, "none").to(device)
    images = torch.rand(batch_size, 1, size, size, device=device)
    labels = torch.randint(0, 3, (batch_size,), device=device)
    optimizer = devices.adam(model.parameters(), lr=1e-4)
    scaler = devices.grad_scaler(device)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with devices.autocast(device):
            loss = F.cross_entropy(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    @torch.no_grad()
    def infer_step():
        model.eval()
        with devices.autocast(device):
            model(images)

    train = timed(train_step, reps, warmup, device)["median"]
    infer = timed(infer_step, reps, warmup, device)["median"]
    with GradCAM(model) as cam:
        cam_seconds = timed(lambda: cam(images), reps, warmup, device)["median"]
    return {"train_images_per_s": batch_size / train, "inference_images_per_s": batch_size / infer,
            "gradcam_ms_per_image": 1000 * cam_seconds / batch_size}


def bench_onnx(backbone: str, size: int = 224, batches: tuple[int, ...] = (1, 32), reps: int = 3,
               warmup: int = 1) -> dict:
    """CPU inference images/s of the exported graph under ONNX Runtime and of PyTorch, per batch size
    (the same random-weight model and images; probabilities out)."""
    import tempfile
    from pathlib import Path

    import onnxruntime

    from classifier.inference.export import Probabilities, write_onnx

    model = build_model(backbone, "none").eval()
    wrapped = Probabilities(model).eval()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        write_onnx(model, size, path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch in batches:
            images = torch.rand(batch, 1, size, size)
            feed = {"image": images.numpy()}
            with torch.no_grad():
                ours = timed(lambda: wrapped(images), reps, warmup)["median"]
            theirs = timed(lambda: session.run(["probabilities"], feed), reps, warmup)["median"]
            rows[str(batch)] = {"pytorch_images_per_s": batch / ours, "onnxruntime_images_per_s": batch / theirs}
    return rows
