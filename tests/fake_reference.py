"""Write a stand-in for the reference CycleGAN checkout: a ``train.py`` that checks the options the
bench passes and prints iteration lines in the reference's own log format (tests only)."""
from __future__ import annotations

from pathlib import Path

TRAIN = '''
import argparse, os, sys, time
p = argparse.ArgumentParser()
for flag in ("dataroot", "name", "model", "checkpoints_dir", "input_nc", "output_nc", "netG", "ngf", "batch_size",
             "load_size", "crop_size", "print_freq", "display_freq", "save_latest_freq", "save_epoch_freq",
             "n_epochs", "n_epochs_decay", "max_dataset_size", "num_threads"):
    p.add_argument("--" + flag)
p.add_argument("--no_html", action="store_true")
p.add_argument("--serial_batches", action="store_true")
a = p.parse_args()
import dominate, wandb  # the reference imports both at module level
assert a.model == "cycle_gan" and a.input_nc == a.output_nc == "1" and a.batch_size == "1" and a.no_html
assert os.environ.get("CUDA_VISIBLE_DEVICES") == "", "the bench hides CUDA for a CPU measurement"
n = len(os.listdir(os.path.join(a.dataroot, "trainA")))
for i in range(1, min(n, int(a.max_dataset_size)) + 1):
    print(f"[Rank 0] (epoch: 1, iters: {i}, time: {0.25 * i:.3f}, data: 0.001) , G_A: 0.500")
'''


def fake_reference(folder: Path) -> Path:
    for path in ("models/cycle_gan_model.py", "options/train_options.py"):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text("")
    (folder / "train.py").write_text(TRAIN)
    return folder
