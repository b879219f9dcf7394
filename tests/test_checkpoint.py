"""runkit.checkpoint: atomic saves, and temporaries a killed writer left behind are removed."""
from __future__ import annotations

import os
import subprocess
import sys

import torch

from runkit.checkpoint import atomic_save, load


def test_a_save_removes_temporaries_of_dead_writers_and_keeps_live_ones(tmp_path):
    target = tmp_path / "last.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a process that has ended
    orphan = tmp_path / f".last.pt.{dead}.tmp"
    orphan.write_bytes(b"half a checkpoint")
    live = tmp_path / f".last.pt.{os.getppid()}.tmp"  # a running process's (pytest's parent)
    live.write_bytes(b"being written")
    other = tmp_path / f".best.pt.{dead}.tmp"  # another file's temporary is not ours to judge
    other.write_bytes(b"x")
    atomic_save({"step": 3}, target)
    assert load(target)["step"] == 3
    assert not orphan.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name, other.name])
    assert torch.load(target, weights_only=False) == {"step": 3}
