"""CycleGAN training, resume, synthesis and the ``cxr gan`` command on a handful of real images."""
from __future__ import annotations

import os
import shutil
import signal

import pytest
import torch
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import few
from cxrdata import Manifest, cache
from cxrdata.manifest import sha256_of
from cyclegan.cli import gan_cli
from cyclegan.config import from_profile
from cyclegan.data import Domain
from cyclegan.domains import DomainError, select_domains
from cyclegan.model import CycleGAN, NonFiniteLossError
from cyclegan.synth import synthesize
from cyclegan.train import TrainingInterrupted, train
from runkit.checkpoint import load
from runkit.rundir import RunExistsError, is_finished

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]
TINY = dict(image_size=32, ngf=8, n_blocks=2, ndf=8, pool_size=3, iterations=6, log_every=2,
            sample_every=3, checkpoint_every=3, n_samples=2)
TINY_ARGS = [arg for k, v in TINY.items() for arg in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture
def tiny_csv(cxr3, tmp_path):
    """4 train images per class plus val and test images that must never reach the GAN."""
    subset = few(cxr3, "train", 4) + few(cxr3, "val", 2) + few(cxr3, "test", 2)
    path = tmp_path / "tiny.csv"
    subset.write(path, extra_columns=("image_id",))
    return path


def tiny(tiny_csv, **changes):
    return from_profile("cpu", dataset=str(tiny_csv), **{**TINY, **changes})


def test_only_training_images_reach_the_gan(tiny_csv, tmp_path, monkeypatch):
    decoded = []
    real_decode = cache.decode
    monkeypatch.setattr(cache, "decode", lambda record, *a, **k: decoded.append(record) or real_decode(record, *a, **k))
    train(tiny(tiny_csv, iterations=2), tmp_path / "run", progress=False)
    assert decoded, "nothing decoded: the cache was not isolated"
    assert {r.split for r in decoded} == {"train"}
    assert {r.label for r in decoded} == {"normal", "covid"}
    manifest = Manifest.read(tiny_csv)
    expected = {r.file for r in manifest if r.split == "train" and r.label in ("normal", "covid")}
    assert {r.file for r in decoded} == expected


def test_an_empty_domain_is_a_clear_error(cxr3):
    normals_only = few(cxr3, "train", 2).select(label="normal")
    with pytest.raises(DomainError, match="--domain-b 'label=covid': selects no training images"):
        select_domains(normals_only, "label=normal", "label=covid")


def _weights(state: dict) -> dict[str, torch.Tensor]:
    return {f"{net}.{k}": v for net in ("G_A", "G_B", "D_A", "D_B") for k, v in state[net].items()}


def test_interrupt_then_resume_equals_an_uninterrupted_run(tiny_csv, tmp_path, monkeypatch):
    config = tiny(tiny_csv, checkpoint_every=4)
    straight = load(train(config, tmp_path / "straight", progress=False) / "checkpoint.pt")

    real_step, calls = CycleGAN.step, []

    def step_then_ctrl_c_at_3(self, *args):
        calls.append(1)
        losses = real_step(self, *args)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-run; saved at the iteration's end
        return losses

    monkeypatch.setattr(CycleGAN, "step", step_then_ctrl_c_at_3)
    with pytest.raises(TrainingInterrupted, match="interrupted at iteration 3"):
        train(config, tmp_path / "split", progress=False)
    monkeypatch.setattr(CycleGAN, "step", real_step)
    assert load(tmp_path / "split" / "checkpoint.pt")["iteration"] == 3
    assert not is_finished(tmp_path / "split")
    with pytest.raises(RunExistsError, match="--resume"):
        train(config, tmp_path / "split", progress=False)
    resumed = load(train(config, tmp_path / "split", resume=True, progress=False) / "checkpoint.pt")

    assert resumed["iteration"] == straight["iteration"] == 6
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    # the same computation on the same machine: equal to the bit, not within a tolerance
    for name in a:
        assert torch.equal(b[name], a[name]), name
    for pool in ("pool_fake_A", "pool_fake_B"):
        assert torch.equal(torch.cat(resumed[pool]["images"]), torch.cat(straight[pool]["images"])), pool
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(resumed["opt_G"]["state"][0][key], straight["opt_G"]["state"][0][key]), key
    assert resumed["schedulers"] == straight["schedulers"]
    assert torch.equal(resumed["rng"]["torch"], straight["rng"]["torch"])


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_csv, tmp_path, monkeypatch):
    real_batch, calls = Domain.batch, []

    def nan_on_third_iteration(self, *args, **kwargs):
        calls.append(1)
        crops = real_batch(self, *args, **kwargs)
        return crops._replace(images=crops.images * float("nan")) if len(calls) >= 5 else crops  # 2 a step

    monkeypatch.setattr(Domain, "batch", nan_on_third_iteration)
    with pytest.raises(NonFiniteLossError, match=r"at iteration 3; .*checkpoint.pt \(iteration 2\)"):
        train(tiny(tiny_csv, checkpoint_every=2), tmp_path / "run", progress=False)
    state = load(tmp_path / "run" / "checkpoint.pt")
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in _weights(state).values())
    assert not is_finished(tmp_path / "run")


def test_train_resume_synthesise_end_to_end(tiny_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(gan_cli, ["train", "--name", "tiny", "--dataset", str(tiny_csv), "--quiet", *TINY_ARGS])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "gan" / "tiny"
    result = runner.invoke(gan_cli, ["train", "--out", "runs/gan/tiny", "--dataset", str(tiny_csv), "--quiet",
                                     *TINY_ARGS, "--iterations", "8", "--resume"])
    assert result.exit_code == 0, result.output

    config = (run / "config.json").read_text()
    assert '"iterations": 8' in config and '"ngf": 8' in config
    checkpoint = load(run / "checkpoint.pt")
    assert checkpoint["iteration"] == 8 and checkpoint["config"]["image_size"] == 32
    assert {"G_A", "G_B", "D_A", "D_B", "opt_G", "opt_D", "schedulers", "pool_fake_A", "pool_fake_B",
            "rng"} <= checkpoint.keys()
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "iter_000003.png", "iter_000006.png", "iter_000008.png"]
    events = EventAccumulator(str(run)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {f"loss/{n}" for n in ("G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B")} <= scalars
    assert {"lr", "iterations_per_s", "realism/checkerboard_fake_B", "realism/checkerboard_real_B"} <= scalars
    # each step once (the resumed run purged nothing it kept); the two event files' names, and so the
    # order they are read in, depend on how many writers this process made before (a global counter)
    assert sorted(e.step for e in events.Scalars("loss/G_A")) == [2, 4, 6, 8]
    assert len(events.Tags()["images"]) == 1
    assert "realism/skipped/text_summary" in events.Tags()["tensors"]  # 4 covid images: too few to measure
    assert is_finished(run)

    result = runner.invoke(gan_cli, ["synth", "--run", str(run), "--n", "3", "--seed", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "data" / "synthetic" / "tiny"
    synthetic = Manifest.read(out / "manifest.csv", root=out)
    normals = {r.path: r for r in Manifest.read(tiny_csv).select(split="train", label="normal")}
    assert len(synthetic) == 3
    assert len({r.extra["parent_path"] for r in synthetic}) == 3
    for record in synthetic:
        parent = normals[record.extra["parent_path"]]
        assert (record.label, record.split, record.source) == ("covid", "train", "synthetic")
        assert record.patient_id == parent.patient_id
        assert record.extra["parent_image_id"] == parent.extra["image_id"]
        assert record.extra["checkpoint_sha256"] == sha256_of(run / "checkpoint.pt")
        assert record.extra["gan_run"] == "tiny" and record.extra["seed"] == "1"
        assert (record.extra["parent_label"], record.extra["parent_source"]) == ("normal", parent.source)
        assert record.extra["direction"] == "a2b: label=normal → label=covid"
        assert record.file.is_file() and sha256_of(record.file) == record.sha256
    report = (out / "report.json").read_text()
    assert '"nearest_real_target_distance"' in report and '"mean_abs_change_from_parent"' in report
    assert (out / "report.png").stat().st_size > 0
    report_md = (out / "report.md").read_text()
    assert "# Synthesis tiny" in report_md and "needs at least 65 images per set" in report_md
    assert "checkerboard" in report_md and "(report.png)" in report_md
    (out / "report.md").unlink()
    measured = runner.invoke(gan_cli, ["realism", str(out), "--quiet"])  # measured again, report rewritten
    assert measured.exit_code == 0 and "# Synthesis tiny" in measured.output, measured.output
    assert (out / "report.md").read_text() == report_md
    assert sorted(p.name for p in out.parent.iterdir()) == [".tiny.lock", "tiny"], "staging folder left behind"

    again = runner.invoke(gan_cli, ["synth", "--run", str(run), "--n", "3"])
    assert again.exit_code == 1 and "--overwrite" in again.output
    for n, message in (("0", "--n must be positive"), ("5", "--n 5 exceeds the 4 training images to translate")):
        bad = runner.invoke(gan_cli, ["synth", "--run", str(run), "--n", n, "--out", "elsewhere"])
        assert bad.exit_code == 1 and message in bad.output
    assert not (tmp_path / "elsewhere").exists()
    shutil.rmtree(run)  # a synthesis whose report names its target needs no GAN run to be measured again
    assert runner.invoke(gan_cli, ["realism", str(out), "--quiet"]).exit_code == 0


def test_synthesis_input_errors(tiny_csv, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope/checkpoint.pt: no checkpoint"):
        synthesize(tmp_path / "nope", 1)
    run = train(tiny(tiny_csv, iterations=1), tmp_path / "run", progress=False)
    state = load(run / "checkpoint.pt")
    state["config"]["ngf"] = 16  # the weights are ngf 8: the shapes no longer fit
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"run/checkpoint.pt: G_A does not fit "
                                         r".*checkpoint \(8, 1, 7, 7\) vs model \(16, 1, 7, 7\)"):
        synthesize(run, 1, out=tmp_path / "out")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state["config"]["ngf"] = 8
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(PermissionError, match="--out .*a-file/synth: cannot write there"):
        synthesize(run, 1, out=blocker / "synth", progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_rejects_bad_settings_and_benches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert "'cpu', 'paper'" in runner.invoke(gan_cli, ["train", "--profile", "gpu"]).output
    bad = runner.invoke(gan_cli, ["train", "--image-size", "30"])
    assert bad.exit_code == 1 and "size must be a multiple of 4" in bad.output
    for option, value, message in [("--lr", "-1", "lr must be positive"), ("--beta1", "1.5", "beta1 and beta2"),
                                   ("--lambda-cycle", "-2", "lambda_cycle")]:
        refused = runner.invoke(gan_cli, ["train", option, value, "--out", str(tmp_path / "run")])
        assert refused.exit_code == 1 and message in refused.output, refused.output
        assert not (tmp_path / "run").exists()  # nothing left that would block the corrected rerun
    help_text = runner.invoke(gan_cli, ["train", "--help"]).output
    assert "--lambda-identity" in help_text and "paper: 256" in help_text
    bench = runner.invoke(gan_cli, ["bench", "--sizes", "32", "--reps", "1", "--warmup", "0"])
    assert bench.exit_code == 0, bench.output
    assert "32 px:" in bench.output and "s/iter" in bench.output
