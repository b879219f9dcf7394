"""Both trainers under torchrun: 2 processes on CPU (gloo), tiny images from the real corpus.

Equality with a single process: N ranks at batch b average their gradients, which is the
gradient of one process at batch N·b (the losses are batch means and instance norm is per image),
and every rank draws the same global batch and keeps its slice. The two compute that in a
different order, so in float32 they differ in the last bits, by amounts that depend on the CPU's
kernels (AVX2, AVX-512, AMX), and Adam can turn those into steps of up to the learning rate. So
the equality runs in float64 (``float64_cxr.py``), where the two agree to ~1e-15 on every weight
(~1e-9 on the biases that instance norm cancels, whose true gradient is zero) on any CPU, and a
real synchronisation bug — no all-reduce, a rank training on another rank's images — moves the
weights by ~1e-3: the test below breaks the synchronisation on purpose and checks exactly that.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import few
from classifier.cli import classify_cli
from cxrdata import Manifest
from cyclegan.cli import gan_cli
from pipelines.experiment.cli import experiment_cli
from cyclegan.train import train
from cyclegan.config import from_profile
from runkit.checkpoint import load

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FLOAT64_CXR = Path(__file__).with_name("float64_cxr.py")
GAN = dict(image_size=32, ngf=8, n_blocks=2, ndf=8, pool_size=0, log_every=2, sample_every=2, checkpoint_every=100,
           n_samples=2)
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def gan_args(**settings) -> list[str]:
    return [a for k, v in {**GAN, **settings}.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def torchrun(*args: str, nproc: int = 2, wait: bool = True, timeout: float = 300, float64: bool = False,
             env: dict | None = None):
    """``cxr ARGS`` on ``nproc`` processes (``float64``: with torch's default dtype float64)."""
    program = [sys.executable, str(FLOAT64_CXR)] if float64 else [str(BIN / "cxr")]
    command = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={nproc}", "--no-python", "--",
               *program, *args]
    env = {**ONE_THREAD, **(env or {})}
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_csv(cxr3, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "tiny.csv"
    (few(cxr3, "train", 4) + few(cxr3, "val", 2) + few(cxr3, "test", 2)).write(path, extra_columns=("image_id",))
    return path


# float64 bound on every weight: the correct runs stay below it by over 100× (the cancelled
# biases, ~1e-9), a broken synchronisation exceeds it by over 1000× (see the module docstring)
FLOAT64_ATOL = 1e-7


def largest_difference(a: dict, b: dict) -> tuple[float, str]:
    """The largest absolute difference between the two checkpoints' weights, and where."""
    return max(((b[net][key] - value).abs().max().item(), f"{net}.{key}")
               for net in ("G_A", "G_B", "D_A", "D_B") for key, value in a[net].items())


@pytest.fixture(scope="module")
def one_process_at_batch_two(tiny_csv, tmp_path_factory) -> dict:
    """The reference: one process at batch 2, in float64."""
    config = from_profile("cpu", manifest=str(tiny_csv), batch_size=2, iterations=4, **GAN)
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    try:
        return load(train(config, tmp_path_factory.mktemp("one") / "run", progress=False) / "checkpoint.pt")
    finally:
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)


def two_ranks_at_batch_one(run: Path, tiny_csv: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return torchrun("gan", "train", "--out", str(run), "--dataset", str(tiny_csv), "--quiet",
                    "--batch-size", "1", "--iterations", "4", *gan_args(), float64=True, env=env)


def test_two_ranks_at_batch_one_equal_one_process_at_batch_two(one_process_at_batch_two, tiny_csv, tmp_path):
    result = two_ranks_at_batch_one(tmp_path / "two", tiny_csv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("finished:") == 1  # rank 0 alone reports
    double = load(tmp_path / "two" / "checkpoint.pt")
    assert double["world_size"] == 2 and len(double["other_ranks"]) == 1
    assert double["G_A"]["model.1.weight"].dtype == torch.float64
    difference, where = largest_difference(one_process_at_batch_two, double)
    assert difference < FLOAT64_ATOL, f"{where} differs by {difference:.3g}"
    record = json.loads((tmp_path / "two" / "config.json").read_text())
    assert record["runtime"]["world_size"] == 2 and record["runtime"]["global_batch_size"] == 2
    assert record["batch_size"] == 1
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (tmp_path / "two" / "samples").iterdir()) == ["iter_000002.png", "iter_000004.png"]


@pytest.mark.parametrize("fault", ["no-all-reduce", "same-slice"])
def test_a_broken_synchronisation_fails_the_equality(fault, one_process_at_batch_two, tiny_csv, tmp_path):
    """The equality above is not vacuous: with the gradients not averaged, or with every rank
    training on the first slice of the batch, the weights move far beyond its bound."""
    result = two_ranks_at_batch_one(tmp_path / "broken", tiny_csv, env={"CXR_TEST_FAULT": fault})
    assert result.returncode == 0, result.stdout + result.stderr
    difference, where = largest_difference(one_process_at_batch_two, load(tmp_path / "broken" / "checkpoint.pt"))
    assert difference > 1000 * FLOAT64_ATOL, f"{fault}: largest difference only {difference:.3g} ({where})"


def rank_pid(parent: int, local_rank: int) -> int | None:
    """The pid of torchrun's worker with this LOCAL_RANK (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if ppid == parent and f"LOCAL_RANK={local_rank}".encode() in environ:
            return int(entry.name)
    return None


def test_sigterm_to_one_rank_stops_both_and_resume_matches_an_uninterrupted_run(tiny_csv, tmp_path):
    args = ["--dataset", str(tiny_csv), "--quiet", "--batch-size", "1", "--iterations", "40",
            *gan_args(pool_size=3, sample_every=4)]
    straight = torchrun("gan", "train", "--out", str(tmp_path / "straight"), *args)
    assert straight.returncode == 0, straight.stdout
    run = tmp_path / "split"
    launcher = torchrun("gan", "train", "--out", str(run), *args, wait=False)
    deadline = time.monotonic() + 120
    while not (run / "samples" / "iter_000004.png").exists():  # training is under way
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stdout.read()
        time.sleep(0.05)
    os.kill(rank_pid(launcher.pid, 1), signal.SIGTERM)
    output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    assert output.count("interrupted at iteration") == 2, output  # both ranks stopped, at one iteration
    saved = load(run / "checkpoint.pt")
    assert 4 <= saved["iteration"] < 40 and saved["world_size"] == 2
    assert f"interrupted at iteration {saved['iteration']};" in output

    resumed = torchrun("gan", "train", "--out", str(run), "--resume", *args)
    assert resumed.returncode == 0, resumed.stdout
    a, b = load(tmp_path / "straight" / "checkpoint.pt"), load(run / "checkpoint.pt")
    assert b["iteration"] == 40
    assert largest_difference(a, b)[0] == 0  # the same computation on the same machine: to the bit

    one_process = CliRunner().invoke(gan_cli, ["train", "--out", str(run), "--resume", *args, "--iterations", "41"])
    assert one_process.exit_code == 1
    assert "written by 2 process(es), resumed with 1; resume with --nproc_per_node 2" in one_process.output


@pytest.mark.parametrize("backbone", [
    (),
    # ImageNet weights; epoch 2 fine-tunes the top blocks, so both ranks re-wrap the model
    ("--backbone", "efficientnet_lite0", "--weights", "imagenet", "--head-epochs", "1"),
])
def test_two_rank_classifier_writes_once_and_its_metrics_equal_a_later_evaluation(backbone, tiny_csv, tmp_path):
    run = tmp_path / "run"
    result = torchrun("classify", "train", "--dataset", str(tiny_csv), "--out", str(run), "--epochs", "2",
                      "--image-size", "32", "--batch-size", "2", "--no-cross-source", *backbone)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Test accuracy") == 1
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    record = json.loads((run / "config.json").read_text())
    assert record["runtime"]["world_size"] == 2 and record["runtime"]["global_batch_size"] == 4
    assert load(run / "last.pt")["world_size"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    evaluation = CliRunner().invoke(classify_cli, ["evaluate", str(run), str(tiny_csv), "--split", "test",
                                                   "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert evaluation.exit_code == 0, evaluation.output
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["test"]["accuracy"] == metrics["test"]["accuracy"]
    with open(run / "predictions.csv") as a, open(tmp_path / "eval" / "predictions.csv") as b:
        first = {r["path"]: r for r in csv.DictReader(a)}
        second = {r["path"]: r for r in csv.DictReader(b)}
    assert first.keys() == second.keys()
    for path, row in first.items():
        for c in ("p_normal", "p_covid", "p_pneumonia"):
            assert abs(float(row[c]) - float(second[path][c])) < 1e-5, (path, c)


def test_bad_set_ups_are_named(tiny_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(gan_cli, ["train", "--out", str(tmp_path / "g"), "--dataset", str(tiny_csv),
                                          *gan_args(), "--iterations", "1"])
    assert result.exit_code == 1
    assert "WORLD_SIZE=2 but MASTER_ADDR, MASTER_PORT not set: start it with torchrun" in result.output

    monkeypatch.setenv("WORLD_SIZE", "7")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    result = CliRunner().invoke(classify_cli, ["train", "--dataset", str(tiny_csv), "--out", str(tmp_path / "c"),
                                               "--epochs", "1", "--image-size", "32"])
    assert result.exit_code == 1
    assert "7 processes (--nproc_per_node / NPROC) for 12 training images" in result.output
    assert "use at most 6" in result.output
    assert not (tmp_path / "c").exists()


def test_the_experiment_runs_under_torchrun_with_one_writer(tmp_path, monkeypatch, cxr3):
    records = few(cxr3, "train", 4).records + few(cxr3, "val", 1).records + few(cxr3, "test", 2).records
    progression = [r for r in cxr3 if r.patient_id == "ieee8023-178"]  # the report's progression figure
    dataset = tmp_path / "tiny.csv"
    Manifest(records + progression, name="tiny").write(dataset, extra_columns=cxr3.extra_columns)
    monkeypatch.chdir(tmp_path)
    settings = [a for k, v in {"epochs": 1, "image_size": 32, "batch_size": 2, "cross_source": "false"}.items()
                for a in ("--set", f"{k}={v}")]
    settings += [a for k, v in {"size": 32, "ngf": 8, "n_blocks": 2, "ndf": 8, "iterations": 3,
                                "n_samples": 2}.items() for a in ("--gan-set", f"{k}={v}")]
    result = torchrun("pipeline", "compare", "--dataset", str(dataset), "--n", "2", "--seeds", "0",
                      "--name", "ddp", *settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("report: ") == 1
    out = tmp_path / "runs" / "compare" / "ddp"
    assert (out / "report.md").is_file()
    assert len(Manifest.read(out / "synthetic" / "manifest.csv", root=out / "synthetic")) == 2
    for run in [out / "gan", *(out / "classify").iterdir()]:
        assert json.loads((run / "config.json").read_text())["runtime"]["world_size"] == 2, run
    again = CliRunner().invoke(experiment_cli, ["compare", "--dataset", str(dataset), "--n", "2", "--seeds", "0",
                                              "--name", "ddp", *settings])
    assert again.exit_code == 0, again.output  # one process reuses what two made
    controls = len(list((out / "classify").glob("seed0-v1-*")))
    assert controls == 4  # the lung controls beside v1
    assert again.output.count(": reused") == 4 + controls and ": ran" not in again.output
