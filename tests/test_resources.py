"""One process per run folder, and running out of a resource is one line that loses nothing:
two trainings on one folder, a full disk (a file-size limit) during a checkpoint, out of memory."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import classifier.training.train as training
from classifier.cli import classify_cli
from conftest import few
from cxrdata import cache
from runkit import checkpoint
from runkit.rundir import LOCK, RunLock, RunLockedError, check_not_locked, open_run
from runkit.resources import NoSpaceError, ReadOnlyError, writing

CXR = [sys.executable, "-c", "from pipelines.cli import main; main()"]


def hold_lock(folder: Path) -> subprocess.Popen:
    """A process that takes the folder's lock and sleeps."""
    code = (f"from runkit.rundir import RunLock\nimport time\nwith RunLock({str(folder)!r}):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_with_the_holder_named_and_a_killed_one_frees_it(tmp_path):
    holder = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(RunLockedError) as error:
            with RunLock(tmp_path / "run"):
                pass
        message = str(error.value)
        assert f"process {holder.pid} on " in message and str(tmp_path / "run") in message and "\n" not in message
        with pytest.raises(RunLockedError, match="is being written by process"):
            check_not_locked(tmp_path / "run")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunLock(tmp_path / "run"):  # the kernel released it with the process: no stale lock
        check_not_locked(tmp_path / "missing")


def test_overwrite_keeps_the_lock_file_its_writer_holds(tmp_path):
    with RunLock(tmp_path / "run"):
        open_run(tmp_path / "run", {"a": 1})
        (tmp_path / "run" / "old.txt").write_text("x")
        open_run(tmp_path / "run", {"a": 2}, overwrite=True)
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK, "config.json"]


def tiny_args(csv: Path, run: Path, epochs: int, size: int = 32) -> list[str]:
    return ["classify", "train", "--dataset", str(csv), "--out", str(run), "--image-size", str(size),
            "--batch-size", "4", "--epochs", str(epochs), "--seed", "3", "--no-cross-source"]


def env_one_thread(tmp_path: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CXR_CACHE": str(tmp_path / "cache")}


@pytest.mark.integration
def test_two_trainings_on_one_folder_the_second_is_refused_and_the_first_is_unchanged(cxr3, tmp_path):
    manifest = few(cxr3, "train", 4) + few(cxr3, "val", 2) + few(cxr3, "test", 2)
    manifest.write(tmp_path / "tiny.csv", ["image_id"])
    env = env_one_thread(tmp_path)
    slow = ["--backbone", "resnet18", "--weights", "none"]  # still training when the second process has started
    first = subprocess.Popen(CXR + tiny_args(tmp_path / "tiny.csv", tmp_path / "shared", 8, 96) + slow, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "shared" / "config.json").is_file():
        assert first.poll() is None and time.time() < deadline, first.stderr.read()
        time.sleep(0.2)
    second = subprocess.run(CXR + tiny_args(tmp_path / "tiny.csv", tmp_path / "shared", 8, 96) + slow + ["--resume"],
                            env=env, capture_output=True, text=True)
    assert first.poll() is None, "the first training ended before the second started: make it longer"
    assert second.returncode == 1
    holder = second.stderr.split(" on ", 1)[1].strip()
    assert second.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'shared'} is in use by process {first.pid} on {holder}"]
    assert first.wait() == 0, first.stderr.read()
    lone = subprocess.run(CXR + tiny_args(tmp_path / "tiny.csv", tmp_path / "lone", 8, 96) + slow, env=env,
                          capture_output=True, text=True)
    assert lone.returncode == 0, lone.stderr
    shared, alone = checkpoint.load(tmp_path / "shared" / "best.pt"), checkpoint.load(tmp_path / "lone" / "best.pt")
    assert shared["epoch"] == alone["epoch"]
    assert all(torch.equal(shared["model"][k], alone["model"][k]) for k in alone["model"])


def limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail with EFBIG
    return apply


@pytest.mark.integration
def test_a_full_disk_during_a_checkpoint_is_one_line_leaves_nothing_partial_and_resumes(cxr3, tmp_path):
    manifest = few(cxr3, "train", 2) + few(cxr3, "val", 1) + few(cxr3, "test", 1)
    manifest.write(tmp_path / "tiny.csv", ["image_id"])
    env, run = env_one_thread(tmp_path), tmp_path / "run"
    full = subprocess.run(CXR + tiny_args(tmp_path / "tiny.csv", run, 2), env=env, capture_output=True, text=True,
                          preexec_fn=limit_file_size(2 * 2**20))  # EfficientNet-Lite0's checkpoint is ~14 MB
    assert full.returncode == 1
    last = full.stderr.strip().splitlines()[-1]  # after the progress bars: one line, no traceback
    assert "Traceback" not in full.stderr and full.stderr.count("Error") == 1
    assert last.startswith(f"Error: file size limit reached writing {run / 'best.pt'} (")
    assert "free); free space and rerun (with --resume" in last
    assert not list(run.glob(".*.tmp")) and not (run / "best.pt").exists()
    resumed = subprocess.run(CXR + tiny_args(tmp_path / "tiny.csv", run, 2) + ["--resume"], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "finished.json").is_file()


def test_writing_names_a_read_only_folder_and_a_full_disk(tmp_path):
    with pytest.raises(ReadOnlyError, match=f"cannot write {tmp_path / 'x.json'}: .* read-only or not writable"):
        with writing(tmp_path / "x.json"):
            raise OSError(30, "Read-only file system")
    with pytest.raises(NoSpaceError, match=r"^no space left on device writing .*x\.json \(.* free\)"):
        with writing(tmp_path / "x.json"):
            raise OSError(28, "No space left on device")


@pytest.mark.integration
@pytest.mark.usefixtures("one_thread")
def test_out_of_memory_in_training_is_one_line_with_what_to_lower(cxr3, tmp_path, monkeypatch):
    manifest = few(cxr3, "train", 2) + few(cxr3, "val", 1) + few(cxr3, "test", 1)
    manifest.write(tmp_path / "tiny.csv", ["image_id"])

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training, "train_epoch", exhausted)
    result = CliRunner().invoke(classify_cli, tiny_args(tmp_path / "tiny.csv", tmp_path / "run", 1)[1:])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1:] == [
        "Error: out of memory training the classifier on cpu (batch 4, 32 px); lower --batch-size (or "
        "--image-size) and rerun with --resume"]


def test_two_writers_of_one_cache_key_at_once_leave_one_whole_file(cxr3, tmp_path, monkeypatch):
    monkeypatch.setenv("CXR_CACHE", str(tmp_path / "cache"))
    manifest = few(cxr3, "train", 3)
    results, start = [], threading.Barrier(2)

    def write():
        start.wait()
        results.append(cache.cached_images(manifest, 48, progress=False))

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and np.array_equal(np.load(files[0]), results[0])
    assert np.array_equal(results[0], results[1])


def test_an_output_replaced_whole_has_one_writer_too(tmp_path):
    from runkit.rundir import staged_folder

    code = (f"from runkit.rundir import staged_folder\nimport time\nwith staged_folder({str(tmp_path / 'synth')!r}):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"{tmp_path / 'synth'} is in use by process {holder.pid} on "):
            with staged_folder(tmp_path / "synth"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with staged_folder(tmp_path / "synth") as staging:
        (staging / "made.txt").write_text("whole")
    assert (tmp_path / "synth" / "made.txt").read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".synth.lock", "synth"]
