"""Run a step once: reuse a finished run with the same config, resume an unfinished one.

Re-running an experiment (``make demo`` twice) redoes nothing that finished with the same
settings; a finished run with other settings is never overwritten silently.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from runkit.rundir import CONFIG, FINISHED, RunExistsError, read_json


def same_settings(a: dict, b: dict) -> bool:
    """True when two configs are equal as JSON (tuples and lists alike)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def ensure(run_dir: Path, config: dict, run: Callable[..., Path], *, overwrite: bool = False) -> tuple[Path, str]:
    """Call ``run(run_dir, resume=…, overwrite=…)`` unless ``run_dir`` already finished ``config``.

    Returns the run folder and what happened: ``reused``, ``resumed`` or ``ran``.
    """
    run_dir = Path(run_dir)
    if (run_dir / CONFIG).is_file() and not overwrite:
        if not same_settings(read_json(run_dir / CONFIG), config):
            raise RunExistsError(f"{run_dir} holds a run with other settings; pass --overwrite to redo "
                                 "it, or choose another --name")
        if (run_dir / FINISHED).is_file():
            return run_dir, "reused"
        return run(run_dir, resume=True, overwrite=False), "resumed"
    return run(run_dir, resume=False, overwrite=overwrite), "ran"
