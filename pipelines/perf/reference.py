"""Time the reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix) beside ours, as a process.

Nothing of the reference is imported or copied: its own ``train.py`` runs from a checkout the user
gives (``--reference DIR``), on real chest X-rays laid out as it expects (``trainA/`` normal,
``trainB/`` covid), one channel, batch 1, printing every iteration. Its per-iteration compute time
(``time:`` in its log: ``set_input`` plus ``optimize_parameters``, no data loading) is the
measure; ours is ``cyclegan.bench.seconds_per_iteration`` (one training step on images already
in memory), in its own process too. What the reference needs to start, and how it is handled:

* ``dominate`` (its HTML pages) and ``wandb`` (its logging service) are imported at module
  level; where they are not installed, empty stand-ins are put on its ``PYTHONPATH`` (``--no_html``
  and no ``--use_wandb`` mean neither is ever called);
* at commit 2a7afba it has no ``--gpu_ids``: it takes ``cuda:0`` when CUDA is visible, so a CPU
  measurement hides the GPUs (``CUDA_VISIBLE_DEVICES=``).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cxrdata import Manifest, manifest_path

TIME = re.compile(r"\(epoch: \d+, iters: \d+, time: ([0-9.]+), data: [0-9.]+\)")
ARCHS = {"cpu": ("resnet_6blocks", 32), "paper": ("resnet_9blocks", 64)}  # our profiles' generator, ngf
STAND_INS = {"dominate/__init__.py": "class document:  # stand-in: the benchmark runs with --no_html\n"
                                     "    def __init__(self, *args, **kwargs):\n        pass\n",
             "dominate/tags.py": "def __getattr__(name):  # stand-in: meta, h3, table, … are never called\n"
                                 "    return lambda *args, **kwargs: None\n",
             "wandb/__init__.py": "# stand-in: the benchmark never passes --use_wandb\n"}


class ReferenceCheckoutError(ValueError):
    """The reference checkout cannot be run; the message says what is missing."""


def check_checkout(folder: Path) -> Path:
    folder = Path(folder).expanduser().resolve()
    missing = [p for p in ("train.py", "models/cycle_gan_model.py", "options/train_options.py")
               if not (folder / p).is_file()]
    if missing:
        raise ReferenceCheckoutError(f"--reference {folder}: not a pytorch-CycleGAN-and-pix2pix checkout (no "
                              f"{', '.join(missing)})")
    return folder


def prepare_images(folder: Path, dataset: str = "cxr3", count: int = 12) -> Path:
    """``count`` normal (trainA) and covid (trainB) training images of ``dataset`` as files."""
    manifest = Manifest.read(manifest_path(dataset))
    for sub, label in (("trainA", "normal"), ("trainB", "covid")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for record in manifest.select(split="train", label=label).records[:count]:
            shutil.copy(record.file, folder / sub / record.file.name)
    return folder


def stand_ins(folder: Path) -> Path | None:
    """A folder of empty ``dominate``/``wandb`` modules for those not installed, or None."""
    needed = {path: text for path, text in STAND_INS.items()
              if importlib.util.find_spec(path.split("/")[0]) is None}
    if not needed:
        return None
    for path, text in needed.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, encoding="utf-8")
    return folder


def reference_seconds(checkout: Path, arch: str, size: int, iterations: int = 4, warmup: int = 1,
                      device: str = "cpu", timeout: float = 600) -> dict:
    """Median (and all) per-iteration compute seconds of the reference's ``train.py``."""
    checkout = check_checkout(checkout)
    net, ngf = ARCHS[arch]
    with tempfile.TemporaryDirectory(prefix="cyclegan-reference-") as work:
        work = Path(work)
        data = prepare_images(work / "data", count=iterations + warmup)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        extra = stand_ins(work / "stand-ins")
        if extra:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra), env.get("PYTHONPATH")]))
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        command = [sys.executable, "train.py", "--dataroot", str(data), "--name", "bench", "--model", "cycle_gan",
                   "--checkpoints_dir", str(work / "checkpoints"), "--input_nc", "1", "--output_nc", "1",
                   "--netG", net, "--ngf", str(ngf), "--batch_size", "1", "--load_size", str(round(size * 286 / 256)),
                   "--crop_size", str(size), "--no_html", "--print_freq", "1", "--display_freq", "1000000000",
                   "--save_latest_freq", "1000000000", "--save_epoch_freq", "1000000000", "--n_epochs", "1",
                   "--n_epochs_decay", "0", "--max_dataset_size", str(iterations + warmup), "--num_threads", "0",
                   "--serial_batches"]
        done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=timeout)
    times = [float(t) for t in TIME.findall(done.stdout)]
    if done.returncode or len(times) < iterations + warmup:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ReferenceCheckoutError(f"the reference's train.py failed (exit {done.returncode}, {len(times)} timed "
                              f"iterations): {' | '.join(tail)}")
    kept = times[warmup:]
    return {"median": statistics.median(kept), "min": min(kept), "max": max(kept), "all": kept}
