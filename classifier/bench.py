"""Speed of each backbone on the current device (training and inference images/s, Grad-CAM ms, in
either memory layout), and of what users wait on: predict over files and a run's evaluation."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from runkit import device as devices
from runkit.timing import timed

from classifier.evaluation.gradcam import GradCAM
from classifier.model.backbones import build_model


def bench_backbone(backbone: str, size: int = 224, batch_size: int = 8, reps: int = 3, warmup: int = 1,
                   device: torch.device | None = None, channels_last: bool = False) -> dict[str, float]:
    """Median over ``reps`` timed steps after ``warmup`` ones, random weights and images, the model
    and the images in the channels-last memory layout or the default (contiguous) one."""
    device = device or devices.pick_device()
    devices.tune_for(device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(backbone, "none").to(device, memory_format=layout)
    images = torch.rand(batch_size, 1, size, size, device=device).contiguous(memory_format=layout)
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

    from classifier.inference.export import write_onnx
    from classifier.inference.probabilities import Probabilities

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


def stand_in_run(folder: Path, size: int) -> Path:
    """A finished run folder of the cpu profile's model with its starting weights, at ``size`` px:
    what predict and evaluation are timed on (their speed does not depend on the weights)."""
    from classifier.config import make_config
    from classifier.model.checkpoints import checkpoint_payload
    from runkit import checkpoint, rundir

    config = make_config("cpu", image_size=size)
    torch.manual_seed(0)  # the same stand-in each time: its graph is made once
    model = build_model(config.backbone, "none", config.hide_lungs, config.equalize, config.head, config.region)
    rundir.write_json(folder / rundir.CONFIG, config.to_dict())
    checkpoint.atomic_save(checkpoint_payload(model, epoch=0, image_size=size), folder / "best.pt")
    rundir.mark_finished(folder)
    return folder


def bench_predict(run: Path, files: list[Path], out: Path, reps: int = 3) -> dict:
    """``predict_files`` over ``files`` with each engine, with and without Grad-CAM overlays: the
    first call (which makes what the cache lacks: the graph, the lung masks), then the median of the
    next ``reps``."""
    from classifier.inference.predict import predict_files

    rows = {}
    for engine in ("onnxruntime", "pytorch"):
        for cam in (False, True):
            def predict():
                answers = list(predict_files(files, run, out, "predicted" if cam else None, engine=engine))
                assert all(not isinstance(a, Exception) for a in answers), answers
            cold = timed(predict, 1, 0)["median"]
            warm = timed(predict, reps, 0)
            rows[f"{engine}{' +cam' if cam else ''}"] = {"images": len(files), "first_call_seconds": cold,
                                                         "seconds": warm, "images_per_s": len(files) / warm["median"]}
    return rows


def bench_evaluation(run: Path, out: Path, reps: int = 3, warmup: int = 1) -> dict:
    """A run's evaluation after training (the out-of-source block and the test split: probabilities,
    Grad-CAM, reports) with each engine, its datasets already decoded."""
    from classifier.config import from_run
    from classifier.evaluation.held_out import write_cross_source, write_evaluation
    from classifier.inference.probabilities import ProbabilityEngine
    from classifier.inference.runs import load_run_model
    from classifier.training.data import build_splits
    from cxrdata import CXRDataset

    config = from_run(run / "config.json")
    device = torch.device("cpu")
    model, size = load_run_model(run, device)
    splits = build_splits(config)
    test = CXRDataset(splits.test, size, progress=False, region=config.region)
    rows = {}
    for engine in ("onnxruntime", "pytorch"):
        def evaluate():
            scorer = ProbabilityEngine(model, size, device, engine)
            block = write_cross_source(scorer, splits, config, out, progress=False)
            write_evaluation(scorer, test, splits, config, out, training={"best_epoch": 0, "epochs_run": 1},
                             cross_source=block, progress=False)
        rows[engine] = {"test_images": len(test), "seconds": timed(evaluate, reps, warmup)}
    return rows
