"""``gpu-check``: everything a GPU must show, in one bounded command, prepared and tested on CPU.

A GPU is lent only now and then, for minutes, to a machine whose own Python has torch and
torchvision but not this project's installs (no pooch, no FastAPI). So the check runs as
``python3 -m pipelines.perf.gpucheck`` from a checkout, imports only what training needs, reads
images from a small folder that ``make gpu-check-data`` prepares beforehand, and writes
``gpu-check.json``, ``gpu-check.md`` and the sample grid into one folder. Steps, each timed and
bounded:

1. the CUDA-only checks (skipped, visibly, without CUDA): a CycleGAN step under bf16 autocast
   against fp32, a GPU checkpoint resumed on the CPU and back, a classifier epoch with AMP, and
   Grad-CAM on CUDA against the CPU's;
2. the CycleGAN's paper architecture at 128 and 256 px, fp32 and bf16, batch 1 and the largest
   batch that fits: s/iter, images/s, peak GPU memory;
3. a real paper-profile training run for as many iterations as its time box allows, with its
   sample grid and the projected time of 5000 iterations;
4. the five classifier backbones at 224 px: training and inference images/s, Grad-CAM ms/image.

``--quick`` runs the same steps at tiny sizes on whatever device there is (CI runs it).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from classifier.bench import bench_backbone
from classifier.model.registry import BACKBONES
from cxrdata import Manifest, Record, manifest_path, read_grayscale
from cxrdata.images import fit_square
from cxrdata.manifest import sha256_of, sidecar_path
from cyclegan.bench import seconds_per_iteration
from cyclegan.config import from_profile
from cyclegan.model import CycleGAN
from cyclegan.train import train as train_gan
from runkit import machine
from runkit.checkpoint import atomic_save, load
from runkit.device import native_bf16
from runkit.formatting import markdown_table

DATA_DIR = Path("gpu-check-data")
GAN_STEPS = 5000  # the paper's iterations, projected from the measured rate


@dataclass(frozen=True)
class Plan:
    """The sizes and time boxes of one check."""

    gan_sizes: tuple[int, ...]
    gan_profile: str
    max_batch: int
    reps: int
    training_seconds: float
    training_max_iterations: int
    classifier_size: int
    classifier_batch: int
    step_seconds: float  # a step stops starting new measurements after this


FULL = Plan(gan_sizes=(128, 256), gan_profile="paper", max_batch=64, reps=5, training_seconds=150,
            training_max_iterations=GAN_STEPS, classifier_size=224, classifier_batch=32, step_seconds=100)
QUICK = Plan(gan_sizes=(32,), gan_profile="cpu", max_batch=2, reps=1, training_seconds=20,
             training_max_iterations=4, classifier_size=32, classifier_batch=2, step_seconds=60)
TINY_GAN = {"ngf": 8, "n_blocks": 1, "ndf": 8}  # --quick: every code path, not a measurement


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def precisions(dev: torch.device) -> tuple[str, ...]:
    return ("fp32", "bf16") if dev.type == "cuda" or native_bf16() else ("fp32",)


# -- the data folder ------------------------------------------------------------------------------
def prepare_data(out: Path = DATA_DIR, dataset: str = "cxr3", per_class: int = 100, held_out: int = 10,
                 size: int = 256) -> Path:
    """``per_class`` training images of each class (and ``held_out`` val and test ones) of
    ``dataset``, centre-cropped to ``size`` px PNGs in ``out/images``, with ``out/manifest.csv``
    whose sidecar names the folder itself as its root (so it moves with the folder)."""
    manifest = Manifest.read(manifest_path(dataset))
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    records = []
    for split, count in (("train", per_class), ("val", held_out), ("test", held_out)):
        for label in ("normal", "covid", "pneumonia"):
            for r in manifest.select(split=split, label=label).records[:count]:
                path = f"images/{r.extra.get('image_id') or Path(r.path).stem}.png"
                Image.fromarray(fit_square(read_grayscale(r.file), size)).save(out / path, optimize=True)
                records.append(Record(path=path, label=label, split=split, patient_id=r.patient_id,
                                      source=r.source, sha256=sha256_of(out / path), file=out / path,
                                      extra={"image_id": Path(path).stem}))
    sidecar_path(out / "manifest.csv").write_text(json.dumps({"root": "."}) + "\n", encoding="utf-8")
    Manifest(records, name="gpu-check").write(out / "manifest.csv", extra_columns=("image_id",))
    return out


# -- step 1: CUDA-only checks -----------------------------------------------------------------------
def check_bf16_step(bound: float = 0.05) -> dict:
    """One CycleGAN step from the same weights and images in fp32 and under bf16 autocast: every
    loss within ``bound`` (relative) of fp32's."""
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = CycleGAN(from_profile("paper", image_size=64, precision=precision, pool_size=0), torch.device("cuda"))
        images = torch.rand(2, 1, 1, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
        losses[precision] = {k: float(v) for k, v in model.step(images[0], images[1]).items()}
    worst = max(abs(losses["bf16"][k] - v) / max(abs(v), 1e-6) for k, v in losses["fp32"].items())
    return {"ok": worst <= bound, "worst_relative_difference": worst, "bound": bound, "losses": losses}


def check_checkpoint_round_trip(folder: Path) -> dict:
    """A checkpoint written on the GPU loads on the CPU and back, every tensor unchanged, and both
    continue with a finite step."""
    torch.manual_seed(0)
    config = from_profile("cpu", image_size=32, **TINY_GAN, pool_size=0)
    images = torch.rand(2, 1, 1, 32, 32) * 2 - 1
    gpu = CycleGAN(config, torch.device("cuda"))
    gpu.step(images[0], images[1])
    atomic_save(gpu.state_dict(), folder / "gpu.pt")
    cpu = CycleGAN(config, torch.device("cpu"))
    cpu.load_state_dict(load(folder / "gpu.pt", map_location="cpu"), folder / "gpu.pt")
    atomic_save(cpu.state_dict(), folder / "cpu.pt")
    again = CycleGAN(config, torch.device("cuda"))
    again.load_state_dict(load(folder / "cpu.pt", map_location="cuda"), folder / "cpu.pt")
    same = all(torch.equal(a.cpu(), b.cpu()) for name in ("G_A", "D_A")
               for a, b in zip(gpu.nets[name].state_dict().values(), again.nets[name].state_dict().values()))
    finite = all(np.isfinite(float(v)) for m in (cpu, again) for v in m.step(images[0], images[1]).values())
    return {"ok": same and finite, "weights_equal_after_round_trip": same, "next_step_finite": finite}


def check_classifier_amp(data: Path, folder: Path) -> dict:
    """One classifier epoch on the GPU with mixed precision: it finishes with finite losses."""
    from classifier.config import make_config
    from classifier.training.train import train_classifier

    config = make_config(dataset=str(data / "manifest.csv"), image_size=64, batch_size=16, epochs=1,
                         cross_source=False, device="cuda", precision="auto")
    run = train_classifier(config, folder / "classifier-amp", progress=False)
    history = load(run / "last.pt")["history"]
    return {"ok": all(np.isfinite(h["train_loss"]) for h in history), "train_loss": history[-1]["train_loss"],
            "precision": json.loads((run / "config.json").read_text())["runtime"]["precision"]}


def check_gradcam_matches_cpu(atol: float = 1e-3) -> dict:
    """Grad-CAM maps of one model in fp32 on CUDA and on the CPU agree within ``atol``."""
    from classifier.evaluation.gradcam import GradCAM
    from classifier.model.backbones import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", "none").eval()
    images = torch.rand(4, 1, 96, 96)
    with GradCAM(model) as cam:
        cpu_maps, _ = cam(images)
    model.cuda()
    with GradCAM(model) as cam:
        gpu_maps, _ = cam(images.cuda())
    difference = float((gpu_maps.cpu() - cpu_maps).abs().max())
    return {"ok": difference <= atol, "max_abs_difference": difference, "atol": atol}


def cuda_checks(data: Path, folder: Path) -> dict:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device: the CUDA-only checks need a GPU"}
    folder.mkdir(parents=True, exist_ok=True)
    return {"bf16_step": check_bf16_step(), "checkpoint_round_trip": check_checkpoint_round_trip(folder),
            "classifier_amp": check_classifier_amp(data, folder), "gradcam_cuda_vs_cpu": check_gradcam_matches_cpu()}


# -- step 2: CycleGAN speed ---------------------------------------------------------------------------
def gan_speed(plan: Plan, dev: torch.device, deadline: float, reference: Path | None = None) -> list[dict]:
    """Ours at each size and precision, batch 1 up to the largest that fits (doubling); with
    ``reference``, its ``train.py`` at batch 1 and the same size too."""
    from pipelines.perf.reference import reference_seconds

    rows = []
    extra = TINY_GAN if plan is QUICK else {}
    for size in plan.gan_sizes:
        for precision in precisions(dev):
            batch = 1
            while batch <= plan.max_batch and time.monotonic() < deadline:
                config = from_profile(plan.gan_profile, device=dev.type, precision=precision, batch_size=batch, **extra)
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                try:
                    seconds = seconds_per_iteration(config, size, reps=plan.reps, warmup=1)
                except torch.cuda.OutOfMemoryError:
                    break
                rows.append({"arch": plan.gan_profile, "size": size, "precision": precision, "batch": batch,
                             "seconds_per_iteration": seconds["median"], "images_per_s": batch / seconds["median"],
                             "peak_gpu_mib": (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
                                              else None)})
                batch *= 2
        if reference is not None and time.monotonic() < deadline:
            theirs = reference_seconds(reference, plan.gan_profile, size, iterations=plan.reps, device=dev.type)
            rows.append({"arch": f"reference {plan.gan_profile}", "size": size, "precision": "fp32", "batch": 1,
                         "seconds_per_iteration": theirs["median"], "images_per_s": 1 / theirs["median"],
                         "peak_gpu_mib": None})
    return rows


# -- step 3: a real training run ----------------------------------------------------------------------
def gan_training(plan: Plan, data: Path, out: Path, dev: torch.device, seconds_per_iteration: float | None) -> dict:
    """Train the paper profile for as many iterations as the time box allows (estimated from the
    speed step), sample grid included; project the paper's 5000 iterations from the rate."""
    estimate = seconds_per_iteration or 1.0
    iterations = max(2, min(plan.training_max_iterations, int(plan.training_seconds / estimate)))
    extra = {**TINY_GAN, "image_size": 32} if plan is QUICK else {}
    config = from_profile(plan.gan_profile, dataset=str(data / "manifest.csv"), device=dev.type, iterations=iterations,
                          sample_every=max(1, iterations // 4), checkpoint_every=max(1, iterations // 2),
                          log_every=max(1, iterations // 20), **extra)
    run = out / "gan-run"
    start = time.monotonic()
    train_gan(config, run, overwrite=True, progress=False)
    elapsed = time.monotonic() - start
    grids = sorted((run / "samples").glob("iter_*.png"))
    if grids:
        shutil.copy(grids[-1], out / "gan-samples.png")
    return {"iterations": iterations, "seconds": elapsed, "seconds_per_iteration": elapsed / iterations,
            "projected_5000_iterations_minutes": GAN_STEPS * elapsed / iterations / 60,
            "sample_grid": "gan-samples.png" if grids else None, "size": config.image_size}


# -- step 4: classifier backbones -------------------------------------------------------------------
def classifier_speed(plan: Plan, dev: torch.device, deadline: float) -> dict:
    rates = {}
    for backbone, spec in BACKBONES.items():
        if time.monotonic() > deadline:
            rates[backbone] = {"skipped": "time box"}
            continue
        if spec.timm_name and importlib.util.find_spec("timm") is None:
            rates[backbone] = {"skipped": "timm is not installed on this machine"}
            continue
        rates[backbone] = bench_backbone(backbone, size=plan.classifier_size, batch_size=plan.classifier_batch,
                                         reps=plan.reps, warmup=1, device=dev)
    return rates


def run_check(out: Path, data: Path | None = None, quick: bool = False, reference: Path | None = None,
              log=print) -> dict:
    """Every step in order, each timed; writes ``gpu-check.json`` and ``gpu-check.md`` to ``out``.
    ``data`` defaults to ``gpu-check-data/`` (``--quick``: a tiny folder it prepares itself)."""
    plan = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    if data is None and quick:
        data = prepare_data(out / "quick-data", per_class=6, held_out=2, size=64)
    data = Path(data or DATA_DIR)
    if not (data / "manifest.csv").is_file():
        raise SystemExit(f"{data}/manifest.csv: not found; prepare the images first: make gpu-check-data")
    if reference is not None:
        from pipelines.perf.reference import check_checkout

        reference = check_checkout(reference)
    dev = device()
    result = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else f"cpu ({machine.describe()})",
              "torch": torch.__version__, "quick": quick, "plan": asdict(plan), "steps": {}}
    log(f"gpu-check on {result['device']}, torch {torch.__version__}{' (quick)' if quick else ''}")

    def step(name: str, work):
        start = time.monotonic()
        value = work()
        result["steps"][name] = {"seconds": time.monotonic() - start, "result": value}
        log(f"  {name}: {result['steps'][name]['seconds']:.1f} s")
        (out / "gpu-check.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        return value

    step("cuda_checks", lambda: cuda_checks(data, out / "cuda-checks"))
    speed = step("gan_speed", lambda: gan_speed(plan, dev, time.monotonic() + plan.step_seconds, reference))
    ours = [r["seconds_per_iteration"] for r in speed if r["batch"] == 1 and r["precision"] == "fp32"
            and r["size"] == plan.gan_sizes[-1] and not r["arch"].startswith("reference")]
    step("gan_training", lambda: gan_training(plan, data, out, dev, ours[0] if ours else None))
    step("classifier_speed", lambda: classifier_speed(plan, dev, time.monotonic() + plan.step_seconds))
    (out / "gpu-check.md").write_text(markdown(result), encoding="utf-8")
    return result


def markdown(result: dict) -> str:
    steps = result["steps"]
    lines = [f"# gpu-check: {result['device']}", "", f"torch {result['torch']}" + (" — quick (tiny sizes): checks "
             "code paths, not speed" if result["quick"] else ""), ""]
    lines += markdown_table(["step", "seconds"], [[name, f"{s['seconds']:.1f}"] for name, s in steps.items()])
    checks = steps["cuda_checks"]["result"]
    lines += ["", "## CUDA checks", ""]
    details = {name: ", ".join(f"{k} {v}" for k, v in c.items() if k != "ok" and not isinstance(v, dict))
               for name, c in checks.items() if name != "skipped"}
    lines += ([f"skipped: {checks['skipped']}"] if "skipped" in checks else
              [f"- {name}: {'ok' if c['ok'] else '**FAILED**'} ({details[name]})" for name, c in checks.items()])
    lines += ["", "## CycleGAN speed", ""] + markdown_table(
        ["arch", "px", "precision", "batch", "s/iter", "images/s", "peak GPU MiB"],
        [[r["arch"], r["size"], r["precision"], r["batch"], f"{r['seconds_per_iteration']:.4f}",
          f"{r['images_per_s']:.1f}", "" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib']:.0f}"]
         for r in steps["gan_speed"]["result"]])
    t = steps["gan_training"]["result"]
    lines += ["", "## CycleGAN training", "", f"{t['iterations']} iterations at {t['size']} px in {t['seconds']:.1f} s "
              f"({t['seconds_per_iteration']:.3f} s/iter): 5000 iterations would take "
              f"{t['projected_5000_iterations_minutes']:.1f} min." + (" Samples: ![samples](gan-samples.png)"
                                                                    if t["sample_grid"] else "")]
    lines += ["", "## Classifier backbones", ""] + markdown_table(
        ["backbone", "train img/s", "inference img/s", "Grad-CAM ms/img"],
        [[name, r["skipped"], "", ""] if "skipped" in r else
         [name, f"{r['train_images_per_s']:.1f}", f"{r['inference_images_per_s']:.1f}",
          f"{r['gradcam_ms_per_image']:.2f}"]
         for name, r in steps["classifier_speed"]["result"].items()])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m pipelines.perf.gpucheck", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="make the data folder (here, where the corpus is)")
    prepare.add_argument("--out", type=Path, default=DATA_DIR, help=f"the folder to write [{DATA_DIR}]")
    run = commands.add_parser("run", help="run every step (on the GPU machine)")
    run.add_argument("--out", type=Path, default=Path("runs/gpu-check"), help="folder for gpu-check.json/.md and "
                     "the sample grid [runs/gpu-check]")
    run.add_argument("--data", type=Path, default=None, help=f"the folder `prepare` made [{DATA_DIR}; --quick: a "
                     "tiny one made on the spot]")
    run.add_argument("--quick", action="store_true", help="every step at tiny sizes (CPU, CI): code paths, not speed")
    run.add_argument("--reference", type=Path, default=None, help="a checkout of the reference CycleGAN, timed "
                     "beside ours (see `cxr perf bench --help`)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        folder = prepare_data(args.out)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"{folder}: {len(list((folder / 'images').iterdir()))} images, {size / 2**20:.1f} MiB; carry it to the "
              f"GPU machine and run: python3 -m pipelines.perf.gpucheck run")
        return
    run_check(args.out, args.data, args.quick, args.reference)
    print(f"written: {args.out / 'gpu-check.json'}, {args.out / 'gpu-check.md'}")


if __name__ == "__main__":
    main()
