"""``cxr perf``: how fast every part runs here, and the bounded GPU check."""
from __future__ import annotations

from pathlib import Path

import click

from runkit.errors import OneLineErrors
from runkit.rundir import runs_root

from runkit.options import choices
from pipelines.perf.bench import BACKBONES, run_bench
from pipelines.perf.gpucheck import DATA_DIR as GPU_CHECK_DATA, prepare_data, run_check


@click.group("perf", cls=OneLineErrors)
def perf_cli():
    """Speed and machine checks: the benchmark and the bounded GPU check."""


@perf_cli.command("bench")
@click.option("--quick", is_flag=True, help="Every code path at tiny sizes, in seconds (for CI), not a measurement.")
@click.option("--backbones", default=",".join(BACKBONES), show_default=True,
              help="Comma-separated classifier backbones to time.")
@click.option("--reference", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A checkout of the reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix, e.g. commit "
                   "2a7afba): its own train.py runs as a process beside ours at the same configurations (cpu "
                   "and paper architectures, 1 channel, batch 1; 64 and 128 px), ours, reference, ours, "
                   "reference, and the table gives both s/iter and the ratio. Nothing of it is imported. Where "
                   "'dominate' or 'wandb' are not installed, empty stand-ins are put on its PYTHONPATH "
                   "(--no_html, no --use_wandb: neither is called); for CPU timing CUDA is hidden from it "
                   "(that commit has no --gpu_ids and takes cuda:0 when it sees one).")
def bench_cmd(quick, backbones, reference):
    """Time the matmul ceiling, CycleGAN iterations (achieved GFLOP/s), classifier training,
    inference and Grad-CAM, data reading and a classifier epoch with and without the cache; print a
    table and write runs/bench/<timestamp>.json."""
    run_bench(quick=quick, backbones=tuple(choices(backbones, BACKBONES, "--backbones", "backbone")),
              reference=reference, log=click.echo)


@perf_cli.command("gpu-check")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=runs_root("gpu-check"),
              show_default=True, help="Folder for gpu-check.json, gpu-check.md and the sample grid.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The folder `cxr perf gpu-check-data` made [gpu-check-data; --quick: a tiny one made on the spot].")
@click.option("--quick", is_flag=True, help="Every step at tiny sizes (CPU, CI): code paths, not speed.")
@click.option("--reference", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A checkout of the reference CycleGAN, timed beside ours (see `cxr perf bench --help`).")
def gpu_check_cmd(out, data, quick, reference):
    """Everything a GPU must show, bounded (under 8 minutes): the CUDA-only checks, CycleGAN speed at
    128/256 px in fp32 and bf16 up to the largest batch, a time-boxed paper-profile training run, the
    classifier backbones. On a GPU machine with nothing installed: python3 -m pipelines.perf.gpucheck run."""
    run_check(out, data, quick, reference, log=click.echo)
    click.echo(f"written: {out / 'gpu-check.json'}, {out / 'gpu-check.md'}")


@perf_cli.command("gpu-check-data")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=GPU_CHECK_DATA, show_default=True,
              help="The folder to write (replaced if it exists).")
def gpu_check_data_cmd(out):
    """The folder gpu-check reads: 100 training images per class and 10 val and test ones of cxr3,
    at 256 px, with a manifest whose root is the folder itself (under 40 MB; carry it to the GPU)."""
    folder = prepare_data(out)
    click.echo(f"{folder}: {len(list((folder / 'images').iterdir()))} images")
