"""``make bench``: how fast every part runs on this machine, against its own matmul ceiling.

Each measured step runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is
its own. Times are medians of several repetitions after warm-up, with the spread kept. One
table is printed and everything is written to ``runs/bench/<timestamp>.json``.

CycleGAN FLOPs per training iteration are counted from layer shapes (:mod:`runkit.flops`)
for the reference algorithm: six generator and six discriminator forward passes, each backward
costing twice its forward, so ``FLOPs = 3 · (6 · F_G + 6 · F_D)`` per image; achieved GFLOP/s
is that over the measured time, whatever cheaper computation the code actually does. Each
CycleGAN row also times the same convolutions alone (the reference step if everything else were
free) and measures the matmul rate beside it, so a noisy machine's drift does not skew the ratio.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from classifier.model.registry import BACKBONES as REGISTERED
from runkit import machine
from runkit.device import native_bf16
from runkit.rundir import runs_root
from runkit.openmp import set_openmp_wait
from runkit.timing import peak_rss_mib, summary, timed

RUNS_ROOT = runs_root("bench")
BACKBONES = tuple(REGISTERED)  # every backbone the classifier has


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions of a benchmark: full, or QUICK (every code path at tiny sizes)."""

    gan_sizes: tuple[int, ...]
    gan_archs: tuple[str, ...]
    classifier_size: int
    data_size: int
    data_images: int  # 0: the whole cxr3 train split
    epoch_images: int
    matmul_n: int
    reps: int
    warmup: int
    busy_size: int  # the CycleGAN step timed beside a busy program
    reference_sizes: tuple[int, ...]  # --reference: ours and the reference's train.py, A B A B
    lungs_size: int  # the lung segmenter's input side
    predict_images: int  # corpus files predict is timed on (NIH first)
    predict_size: int  # the stand-in run's image side for predict and evaluation


FULL = Plan(gan_sizes=(64, 128, 256), gan_archs=("cpu", "paper"), classifier_size=224, data_size=224,
            data_images=0, epoch_images=512, matmul_n=4096, reps=3, warmup=1, busy_size=128,
            reference_sizes=(64, 128), lungs_size=256, predict_images=300, predict_size=96)
QUICK = Plan(gan_sizes=(32,), gan_archs=("cpu", "paper"), classifier_size=32, data_size=32,
             data_images=12, epoch_images=12, matmul_n=128, reps=2, warmup=1, busy_size=32,
             reference_sizes=(32,), lungs_size=32, predict_images=12, predict_size=32)


# ---- the steps (each runs in its own process) ----------------------------------------------------

def step_matmul(plan: Plan) -> dict:
    from runkit.flops import fastest, matmul_rates

    rates = matmul_rates(plan.matmul_n, repeats=max(plan.reps, 5))
    kernels = {name: summary(kernel_rates) for name, kernel_rates in rates.items()}
    return {"n": plan.matmul_n, "kernel": fastest(rates), "gflops": kernels[fastest(rates)], "kernels": kernels}


def step_gan(plan: Plan, arch: str, size: int, batch: int, precision: str = "fp32") -> dict:
    from cyclegan.bench import REFERENCE_PASSES, convolution_seconds, seconds_per_iteration
    from cyclegan.config import from_profile
    from cyclegan.model import CHANNELS, build_discriminator, build_generator

    from runkit.flops import forward_flops, matmul_gflops

    config = from_profile(arch, batch_size=batch, precision=precision)
    beside = matmul_gflops(plan.matmul_n, repeats=3)
    result = seconds_per_iteration(config, size, reps=plan.reps, warmup=plan.warmup)
    beside += matmul_gflops(plan.matmul_n, repeats=3)
    example = torch.zeros(batch, CHANNELS, size, size)
    flops = 3 * REFERENCE_PASSES * (forward_flops(build_generator(config), example)
                                    + forward_flops(build_discriminator(config), example))
    row = {"arch": arch, "size": size, "batch": batch, "precision": precision, "ngf": config.ngf,
           "n_blocks": config.n_blocks, "seconds_per_iteration": result, "flops_per_iteration": flops,
           "achieved_gflops": flops / result["median"] / 1e9, "matmul_gflops_beside": statistics.median(beside)}
    if precision == "fp32":  # the fp32 convolutions' own speed: what an fp32 step could reach
        convolutions = convolution_seconds(config, size, reps=plan.reps, warmup=plan.warmup)
        row.update(convolutions_alone_seconds=convolutions, convolutions_alone_gflops=flops / convolutions / 1e9)
    return row


def step_gan_step(plan: Plan, arch: str, size: int, precision: str = "fp32") -> dict:
    """Only the seconds of one training step (batch 1): ours beside the reference's."""
    from cyclegan.bench import seconds_per_iteration
    from cyclegan.config import from_profile

    config = from_profile(arch, batch_size=1, precision=precision, upsample="transpose")  # the reference's layers
    return {"seconds_per_iteration": seconds_per_iteration(config, size, reps=plan.reps, warmup=plan.warmup)}


def step_gan_busy(plan: Plan, arch: str, size: int) -> dict:
    """An fp32 CycleGAN step on an idle machine, then beside one busy single-threaded program."""
    import os

    from cyclegan.bench import seconds_per_iteration
    from cyclegan.config import from_profile

    config = from_profile(arch, precision="fp32")
    idle = seconds_per_iteration(config, size, reps=plan.reps, warmup=plan.warmup)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = seconds_per_iteration(config, size, reps=plan.reps, warmup=plan.warmup)
    finally:
        spinner.kill()
        spinner.wait()
    return {"arch": arch, "size": size, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(OpenMP default)"),
            "idle": idle, "busy": busy, "slowdown": busy["median"] / idle["median"]}


def step_gan_region(plan: Plan) -> dict:
    """The cpu profile's training step at its own size on the whole image and in the lungs region."""
    from cyclegan.bench import seconds_per_iteration
    from cyclegan.config import from_profile

    config = from_profile("cpu", precision="fp32")
    size = min(config.image_size, plan.busy_size)
    times = {region: seconds_per_iteration(config.replace(region=region), size, reps=max(plan.reps, 5),
                                           warmup=plan.warmup) for region in ("full", "lungs")}
    return {"size": size, **times, "ratio": times["lungs"]["median"] / times["full"]["median"]}


def step_gan_data(plan: Plan) -> dict:
    """Seconds to draw one training batch from the CycleGAN's cached domains."""
    from cyclegan.config import from_profile
    from cyclegan.data import load_domains

    config = from_profile("cpu")
    size = min(config.image_size, plan.data_size * 2)
    domain_A, domain_B = load_domains(config.replace(image_size=size, load_size=0), progress=False)
    return {"size": size, "batch": config.batch_size,
            "seconds_per_batch": timed(lambda: (domain_A.batch(config.batch_size), domain_B.batch(config.batch_size)),
                                       max(plan.reps, 20), plan.warmup)}


def step_classifier(plan: Plan, backbone: str) -> dict:
    from classifier.bench import bench_backbone

    return {"backbone": backbone, "size": plan.classifier_size,
            **bench_backbone(backbone, size=plan.classifier_size, reps=plan.reps, warmup=plan.warmup)}


def step_onnx(plan: Plan, backbone: str) -> dict:
    from classifier.bench import bench_onnx

    return {"backbone": backbone, "size": plan.classifier_size,
            "batches": bench_onnx(backbone, size=plan.classifier_size, reps=plan.reps, warmup=plan.warmup)}


def step_layout(plan: Plan, backbone: str) -> dict:
    """The classifier's training and inference in the channels-last memory layout (the contiguous
    layout's row is the ``classifier`` step's)."""
    from classifier.bench import bench_backbone

    return {"backbone": backbone, "size": plan.classifier_size, **bench_backbone(
        backbone, size=plan.classifier_size, reps=plan.reps, warmup=plan.warmup, channels_last=True)}


def step_gan_layout(plan: Plan) -> dict:
    """The cpu profile's CycleGAN step with both memory layouts."""
    from cyclegan.bench import seconds_per_iteration
    from cyclegan.config import from_profile

    config = from_profile("cpu", precision="fp32")
    size = min(config.image_size, plan.busy_size)
    times = {("channels_last" if last else "contiguous"): seconds_per_iteration(
        config.replace(channels_last=last), size, reps=plan.reps, warmup=plan.warmup) for last in (False, True)}
    return {"size": size, **times, "ratio": times["channels_last"]["median"] / times["contiguous"]["median"]}


def step_predict(plan: Plan) -> dict:
    """``cxr classify predict`` on corpus files (NIH first) with a stand-in run of the cpu profile's
    model, from an empty cache: its first call makes the graph and the lung masks."""
    import tempfile

    from classifier.bench import bench_predict, stand_in_run
    from classifier.evaluation.crosssource import corpus_manifest

    with tempfile.TemporaryDirectory() as folder:
        os.environ["CXR_CACHE"] = str(Path(folder) / "cache")
        files = [r.file for r in sorted(corpus_manifest(), key=lambda r: r.source != "nih")][:plan.predict_images]
        run = stand_in_run(Path(folder) / "run", plan.predict_size)
        return {"size": plan.predict_size, "files": len(files),
                "engines": bench_predict(run, files, Path(folder) / "out", plan.reps)}


def step_evaluation(plan: Plan) -> dict:
    """A run's evaluation after training (out-of-source block and test split) with a stand-in run."""
    import tempfile

    from classifier.bench import bench_evaluation, stand_in_run

    with tempfile.TemporaryDirectory() as folder:
        run = stand_in_run(Path(folder) / "run", plan.predict_size)
        return {"size": plan.predict_size,
                "engines": bench_evaluation(run, Path(folder) / "out", plan.reps, plan.warmup)}


def step_lungs(plan: Plan) -> dict:
    from cxrdata.lungs.bench import bench_segmenter

    return bench_segmenter(size=plan.lungs_size, reps=plan.reps, warmup=plan.warmup)


def step_data(plan: Plan) -> dict:
    from cxrdata.dataset import read_rates

    rates = read_rates("cxr3", "train", plan.data_size, limit=plan.data_images or None)
    return {name: {"images_per_s": n / seconds, "images": n, "seconds": seconds} for name, seconds, n in rates}


class DecodingDataset(torch.utils.data.Dataset):
    """What the cache replaces: decode and resize the file on every access."""

    def __init__(self, cached):
        self.cached = cached

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, index: int):
        from cxrdata.cache import decode

        image = decode(self.cached.manifest[index], self.cached.size, verify=False)
        return torch.from_numpy(image).unsqueeze(0).float().div_(255.0), int(self.cached.labels[index])


def step_epoch(plan: Plan) -> dict:
    """One classifier training epoch (CPU profile) from the uint8 cache vs decoding every epoch."""
    from classifier.config import make_config
    from classifier.model.backbones import build_model
    from classifier.training.train import configure_stage, train_epoch, train_loader
    from cxrdata import CXRDataset, Manifest, manifest_path
    from runkit.device import grad_scaler, pick_device

    config = make_config("cpu")
    device = pick_device(config.device)
    train = Manifest.read(manifest_path("cxr3")).select(split="train")
    cached = CXRDataset(Manifest(train.records[:plan.epoch_images], name="bench"), config.image_size,
                        progress=False)
    model = build_model(config.backbone, config.weights).placed(device)
    optimizer = configure_stage(model, config, "end-to-end")
    scaler = grad_scaler(device)
    result = {"images": len(cached), "size": config.image_size, "backbone": config.backbone}
    for name, dataset in (("cached", cached), ("decoding", DecodingDataset(cached))):
        loader = train_loader(dataset, config)
        result[name] = timed(lambda: train_epoch(model, loader, optimizer, scaler, config, device, name, False),
                             max(1, plan.reps - 1), 0)
    return result


STEPS = {"matmul": step_matmul, "gan": step_gan, "gan_step": step_gan_step, "gan_busy": step_gan_busy,
         "gan_region": step_gan_region, "gan_data": step_gan_data, "classifier": step_classifier,
         "onnx": step_onnx, "data": step_data, "epoch": step_epoch, "lungs": step_lungs, "layout": step_layout,
         "gan_layout": step_gan_layout, "predict": step_predict, "evaluation": step_evaluation}


def run_step(name: str, quick: bool, *args, env: dict | None = None) -> dict:
    """Run one step in a subprocess (with ``env`` added to its environment); its result with its
    own peak RSS in MiB."""
    command = [sys.executable, "-m", "pipelines.perf.bench", name, "--quick" if quick else "--full",
               *map(str, args)]
    environ = {**os.environ, **(env or {})}
    set_openmp_wait(environ)  # as `cxr` runs: the step's own process loads torch
    done = subprocess.run(command, capture_output=True, text=True, env=environ)
    if done.returncode != 0:
        raise RuntimeError(f"bench step {name} {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(argv: list[str]) -> None:
    name, mode, *args = argv
    plan = QUICK if mode == "--quick" else FULL
    parsed = [int(a) if a.isdigit() else a for a in args]
    result = STEPS[name](plan, *parsed)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


# ---- the whole benchmark -------------------------------------------------------------------------

def beside_reference(plan: Plan, checkout: Path, quick: bool, precisions: tuple[str, ...], log=print) -> list[dict]:
    """Ours and the reference's ``train.py`` at the same configurations, alternating ours,
    reference, ours, reference in one command (so drift on the machine hits both alike)."""
    from pipelines.perf.reference import reference_seconds

    rows = []
    for arch in plan.gan_archs:
        for size in plan.reference_sizes:
            ours, theirs = {p: [] for p in precisions}, []
            for _ in range(2):  # A B A B
                for precision in precisions:
                    row = run_step("gan_step", quick, arch, size, precision)
                    ours[precision].append(row["seconds_per_iteration"]["median"])
                theirs.append(reference_seconds(checkout, arch, size, iterations=plan.reps, warmup=plan.warmup,
                                                device="cuda" if torch.cuda.is_available() else "cpu")["median"])
            reference = statistics.mean(theirs)
            for precision in precisions:
                mine = statistics.mean(ours[precision])
                rows.append({"arch": arch, "size": size, "batch": 1, "precision": precision, "ours": ours[precision],
                             "reference_fp32": theirs, "speedup": reference / mine})
                log(f"gan {arch} {size}px: reference fp32 {reference:.3f} s/iter, ours {precision} {mine:.3f} "
                    f"({reference / mine:.2f}×)")
    return rows


def run_bench(quick: bool = False, backbones: tuple[str, ...] = BACKBONES, out_dir: Path = RUNS_ROOT,
              reference: Path | None = None, log=print) -> Path:
    """Measure every step (and, with ``reference``, the reference CycleGAN beside ours), print
    the table, write the JSON; returns its path."""
    from cyclegan.config import from_profile

    from pipelines.perf.reference import check_checkout

    plan = QUICK if quick else FULL
    if reference is not None:
        reference = check_checkout(reference)  # before anything is measured
    result = {"when": datetime.now(timezone.utc).isoformat(), "quick": quick, "device": _device(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
              "cpu": machine.cpu_name(), "cpu_features": machine.cpu_features(),
              "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "plan": plan.__dict__}
    result["matmul"] = run_step("matmul", quick)
    log(f"matmul fp32: {result['matmul']['gflops']['median']:.1f} GFLOP/s")
    result["gan"] = []
    precisions = ("fp32", "bf16") if torch.cuda.is_available() or native_bf16() else ("fp32",)
    for arch in plan.gan_archs:
        batches = sorted({1, from_profile(arch).batch_size})
        for size in plan.gan_sizes:
            for batch in batches:
                for precision in precisions:
                    row = run_step("gan", quick, arch, size, batch, precision)
                    result["gan"].append(row)
                    log(f"gan {arch} {size}px batch {batch} {precision}: "
                        f"{row['seconds_per_iteration']['median']:.3f} s/iter")
    result["gan_busy"] = []
    for arch in plan.gan_archs:  # OpenMP threads that sleep (the project's setting) vs spin
        for wait in ("sleep", "spin"):
            row = run_step("gan_busy", quick, arch, plan.busy_size, env={"CXR_OMP_WAIT": wait})
            result["gan_busy"].append(row)
            log(f"gan {arch} {plan.busy_size}px beside a busy program ({wait}): {row['slowdown']:.2f}× slower")
    result["gan_region"] = run_step("gan_region", quick)
    log(f"gan cpu {result['gan_region']['size']}px lungs region / whole image: {result['gan_region']['ratio']:.2f}×")
    if reference is not None:
        result["reference"] = {"checkout": str(reference),
                               "rows": beside_reference(plan, reference, quick, precisions, log)}
    result["gan_layout"] = run_step("gan_layout", quick)
    log(f"gan cpu {result['gan_layout']['size']}px channels-last / contiguous: {result['gan_layout']['ratio']:.2f}×")
    result["gan_data"] = run_step("gan_data", quick)
    result["classifier"] = []
    for backbone in backbones:
        result["classifier"].append(run_step("classifier", quick, backbone))
        log(f"classifier {backbone}: done")
    result["layout"] = [run_step("layout", quick, backbone) for backbone in backbones]
    result["onnx"] = []
    if not torch.cuda.is_available():  # CPU inference: ONNX Runtime's CPU provider beside PyTorch
        for backbone in backbones:
            result["onnx"].append(run_step("onnx", quick, backbone))
            log(f"onnx {backbone}: done")
        result["predict"] = run_step("predict", quick)
        log("predict: done")
        result["evaluation"] = run_step("evaluation", quick)
        log("evaluation: done")
    result["data"] = run_step("data", quick)
    result["epoch"] = run_step("epoch", quick)
    result["lungs"] = run_step("lungs", quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}{'-quick' if quick else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(table(result))
    log(f"\nwritten: {path}")
    return path


def _device() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def table(result: dict) -> str:
    """The benchmark as one plain-text table."""
    ceiling = result["matmul"]["gflops"]["median"]
    features = " ".join(result.get("cpu_features", []))
    lines = [f"device {result['device']} ({result['cpu']}; {features}), torch {result['torch']}, "
             f"{result['threads']} threads",
             f"{'measurement':<46} {'median':>10} {'min–max':>17} {'unit':<10} {'peak MiB':>8}",
             f"{'matmul fp32 ceiling, ' + result['matmul']['kernel']:<46} {ceiling:>10.1f} "
             f"{_range(result['matmul']['gflops']):>17} {'GFLOP/s':<10} "
             f"{result['matmul']['peak_rss_mib']:>8.0f}"]
    for name, rates in result["matmul"]["kernels"].items():
        if name != result["matmul"]["kernel"]:
            lines.append(f"{'  (' + name + ')':<46} {rates['median']:>10.1f} {_range(rates):>17} "
                         f"{'GFLOP/s':<10}")
    for g in result["gan"]:
        s = g["seconds_per_iteration"]
        label = (f"CycleGAN {g['arch']} (ngf {g['ngf']}, {g['n_blocks']} blk) {g['size']}px b{g['batch']} "
                 f"{g.get('precision', 'fp32')}")
        lines.append(f"{label:<46} {s['median']:>10.3f} {_range(s):>17} {'s/iter':<10} {g['peak_rss_mib']:>8.0f}")
        beside = g["matmul_gflops_beside"]
        lines.append(f"{'  achieved (reference FLOPs / time)':<46} {g['achieved_gflops']:>10.1f} "
                     f"{_percent(g['achieved_gflops'], beside):>17} {'GFLOP/s':<10}")
        if "convolutions_alone_gflops" in g:
            lines.append(f"{'  its fp32 convolutions alone':<46} {g['convolutions_alone_gflops']:>10.1f} "
                         f"{_percent(g['convolutions_alone_gflops'], beside):>17} {'GFLOP/s':<10}")
    for b in result.get("gan_busy", []):
        label = f"CycleGAN {b['arch']} {b['size']}px fp32, busy/idle, OMP {b['omp_wait_policy']}"
        lines.append(f"{label:<46} {b['slowdown']:>10.2f} {b['idle']['median']:>8.3f}→{b['busy']['median']:<8.3f} "
                     f"{'× (s/iter)':<10}")
    for r in result.get("reference", {}).get("rows", []):
        label = f"CycleGAN {r['arch']} {r['size']}px b1: reference fp32 / ours {r['precision']}"
        pair = f"{statistics.mean(r['reference_fp32']):.3f}/{statistics.mean(r['ours']):.3f}"
        lines.append(f"{label:<46} {r['speedup']:>10.2f} {pair:>17} {'× (s/iter)':<10}")
    if "gan_region" in result:
        r = result["gan_region"]
        pair = f"{r['lungs']['median']:.3f}/{r['full']['median']:.3f}"
        lines.append(f"{'CycleGAN cpu ' + str(r['size']) + 'px b1 fp32: lungs region / whole':<46} {r['ratio']:>10.2f} "
                     f"{pair:>17} {'× (s/iter)':<10} {r['peak_rss_mib']:>8.0f}")
    if "gan_layout" in result:
        r = result["gan_layout"]
        pair = f"{r['channels_last']['median']:.3f}/{r['contiguous']['median']:.3f}"
        lines.append(f"{'CycleGAN cpu ' + str(r['size']) + 'px b1 fp32: channels-last / contig.':<46} "
                     f"{r['ratio']:>10.2f} {pair:>17} {'× (s/iter)':<10} {r['peak_rss_mib']:>8.0f}")
    d = result["gan_data"]
    lines.append(f"{'CycleGAN batch draw from cache':<46} {1000 * d['seconds_per_batch']['median']:>10.2f} "
                 f"{'':>17} {'ms/batch':<10} {d['peak_rss_mib']:>8.0f}")
    for c in result["classifier"]:
        for key, unit in (("train_images_per_s", "img/s"), ("inference_images_per_s", "img/s"),
                          ("gradcam_ms_per_image", "ms/img")):
            label = f"{c['backbone']} {c['size']}px {key.replace('_per_s', '').replace('_per_image', '')}"
            lines.append(f"{label:<46} {c[key]:>10.1f} {'':>17} {unit:<10} {c['peak_rss_mib']:>8.0f}")
    contiguous = {c["backbone"]: c for c in result["classifier"]}
    for c in result.get("layout", []):
        for key in ("train_images_per_s", "inference_images_per_s"):
            label = f"{c['backbone']} {c['size']}px {key.replace('_images_per_s', '')} channels-last / contig."
            lines.append(_row(label, f"{c[key] / contiguous[c['backbone']][key]:.2f}",
                              f"{c[key]:.1f}/{contiguous[c['backbone']][key]:.1f}", "× (img/s)", c["peak_rss_mib"]))
    for o in result.get("onnx", []):
        for batch, rates in o["batches"].items():
            label = f"{o['backbone']} {o['size']}px b{batch} onnxruntime / pytorch"
            pair = f"{rates['onnxruntime_images_per_s']:.1f}/{rates['pytorch_images_per_s']:.1f}"
            lines.append(f"{label:<46} {rates['onnxruntime_images_per_s'] / rates['pytorch_images_per_s']:>10.2f} "
                         f"{pair:>17} {'× (img/s)':<10} {o['peak_rss_mib']:>8.0f}")
    p = result.get("predict", {"engines": {}})
    lines += [_row(f"predict {p['files']} files {p['size']}px, {name}", f"{row['images_per_s']:.1f}",
                   f"first {row['first_call_seconds']:.1f} s", "img/s", p["peak_rss_mib"])
              for name, row in p["engines"].items()]
    e = result.get("evaluation", {"engines": {}})
    lines += [_row(f"run evaluation ({row['test_images']} test + out-of-source), {name}",
                   f"{row['seconds']['median']:.2f}", _range(row["seconds"]), "s", e["peak_rss_mib"])
              for name, row in e["engines"].items()]
    for name in ("cold", "warm"):
        row = result["data"][name]
        lines.append(f"{'cxr3 train read ' + name + ' @ ' + str(result['plan']['data_size']) + 'px':<46} "
                     f"{row['images_per_s']:>10.1f} {'':>17} {'img/s':<10} {result['data']['peak_rss_mib']:>8.0f}")
    e = result["epoch"]
    for name in ("cached", "decoding"):
        lines.append(f"{'classifier epoch, ' + name:<46} {e[name]['median']:>10.2f} {_range(e[name]):>17} "
                     f"{'s':<10} {e['peak_rss_mib']:>8.0f}")
    decode_ms = 1000 * (e["decoding"]["median"] - e["cached"]["median"]) / e["images"]
    lines.append(f"{'  cached / decoding (decoding costs ' + f'{decode_ms:.1f} ms/img)':<46} "
                 f"{e['cached']['median'] / e['decoding']['median']:>10.2f}")
    if "lungs" in result:
        g = result["lungs"]
        for key, label in (("train_images_per_s", "train"), ("segment_images_per_s", "segment")):
            name = f"lung U-Net {g['size']}px {label}"
            lines.append(f"{name:<46} {g[key]:>10.1f} {'':>17} {'img/s':<10} "
                         f"{g['peak_rss_mib']:>8.0f}")
        lines.append(f"{'  the 1,754-image corpus, one fold model each':<46} {g['corpus_minutes']:>10.2f} "
                     f"{'':>17} {'min':<10}")
    return "\n".join(lines)


def _row(label: str, value: str, spread: str, unit: str, peak_mib: float) -> str:
    """One line of the table: what, its value, its spread (or a pair), the unit and the step's peak memory."""
    return f"{label:<46} {value:>10} {spread:>17} {unit:<10} {peak_mib:>8.0f}"


def _percent(rate: float, matmul: float) -> str:
    return f"{100 * rate / matmul:.0f}% of {matmul:.0f}"


def _range(s: dict) -> str:
    return f"{s['min']:.3g}–{s['max']:.3g}"


if __name__ == "__main__":
    child(sys.argv[1:])
