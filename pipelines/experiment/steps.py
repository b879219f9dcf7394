"""Run a step once: reuse a finished run with the same config, resume an unfinished one.

Re-running an experiment (``make demo`` twice) redoes nothing that finished with the same
settings; a finished run with other settings is never overwritten silently.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from cxrdata.manifest import sha256_of
from cyclegan.synth import synthesize
from runkit.distributed import on_main, world_from_env
from runkit.rundir import CONFIG, FINISHED, RunExistsError, read_json, settings, write_json


def same_settings(a: dict, b: dict) -> bool:
    """True when two configs are equal as JSON (tuples and lists alike)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def ensure(run_dir: Path, config: dict, run: Callable[..., Path], *, overwrite: bool = False) -> tuple[Path, str]:
    """Call ``run(run_dir, resume=…, overwrite=…)`` unless ``run_dir`` already finished ``config``.

    Returns the run folder and what happened: ``reused``, ``resumed`` or ``ran``. Under torchrun,
    rank 0 decides and every rank acts on its decision. The ``runtime`` record (precision used,
    world size) is not a setting; resuming with another world size is refused by the trainer.
    """
    run_dir = Path(run_dir)

    def decide() -> str:
        if (run_dir / CONFIG).is_file() and not overwrite:
            if not same_settings(settings(read_json(run_dir / CONFIG)), config):
                raise RunExistsError(f"{run_dir} holds a run with other settings; pass --overwrite to redo "
                                     "it, or choose another --name")
            return "reused" if (run_dir / FINISHED).is_file() else "resumed"
        return "ran"

    how = on_main(world_from_env(), decide)
    if how != "reused":
        run(run_dir, resume=how == "resumed", overwrite=overwrite and how == "ran")
    return run_dir, how


def ensure_timed(run_dir: Path, config: dict, run: Callable[..., Path], times_file: Path, *,
                 overwrite: bool = False) -> tuple[Path, str]:
    """:func:`ensure`, recording in ``times_file`` (JSON, run name → seconds) how long a run took
    when it ran from the start (a resumed run's time is not its whole training time: None)."""
    times = read_json(times_file) if times_file.is_file() else {}
    started = time.perf_counter()
    run_dir, how = ensure(run_dir, config, run, overwrite=overwrite)
    if how != "reused":
        times[run_dir.name] = time.perf_counter() - started if how == "ran" else None
        write_json(times_file, times)
    return run_dir, how


def ensure_synthesis(gan_run: Path, out: Path, n: int, seed: int, *, overwrite: bool = False,
                     progress: bool = True) -> str:
    """Synthesise ``n`` images with ``gan_run``'s checkpoint (parents drawn with ``seed``) into
    ``out``, unless ``out`` already holds exactly those; returns ``reused`` or ``made``."""
    report = out / "report.json"
    if report.is_file() and not overwrite:
        made = read_json(report)
        if (made["n"], str(made["seed"]), made["checkpoint_sha256"]) == (n, str(seed),
                                                                         sha256_of(gan_run / "checkpoint.pt")):
            return "reused"
    synthesize(gan_run, n, seed=seed, out=out, overwrite=True, progress=progress)
    return "made"
