"""Run directories: one config file beside the outputs, and no silent overwrite of a run.

A run directory holds ``config.json`` (the resolved settings) and, once complete,
``finished.json``. Opening a directory that holds a finished run fails unless asked to
overwrite; one that holds an unfinished run fails unless asked to resume or overwrite.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import socket
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .resources import writing

CONFIG = "config.json"
FINISHED = "finished.json"
RUNS_ENV = "CXR_RUNS"  # where every command's runs go; default runs/ in the working directory
LOCK = ".lock"  # held (flock) by the one process writing the run; kept by --overwrite


def runs_root(*parts: str) -> Path:
    """``$CXR_RUNS/<parts>``, else ``runs/<parts>`` in the working directory."""
    return Path(os.environ.get(RUNS_ENV) or "runs", *parts)


class RunExistsError(RuntimeError):
    """A run directory is taken; the message says which option to pass."""


class RunLockedError(RuntimeError):
    """Another process is writing the run directory; the message names it."""


class RunLock:
    """An exclusive OS lock on ``<run_dir>/.lock`` for the life of a run (``with RunLock(d):``).

    The kernel releases it when the process ends, however it ends, so a killed run never leaves
    a stale lock. The file records the holder's pid and host for the refusal message.
    """

    def __init__(self, run_dir: Path | str, lock_file: Path | None = None):
        self.run_dir = Path(run_dir)
        self.lock_file = lock_file or self.run_dir / LOCK  # a folder replaced whole keeps its lock beside it
        self.fh = None

    def __enter__(self) -> "RunLock":
        import fcntl

        with writing(self.lock_file):
            self.lock_file.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.lock_file, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fh)
            fh.close()
            raise RunLockedError(f"{self.run_dir} is in use by {holder}; wait for it to finish or stop it, "
                                 "or choose another folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} on {socket.gethostname()} (since "
                 f"{datetime.now(timezone.utc).isoformat(timespec='seconds')})")
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()  # closing releases the lock
        self.fh = None


def _holder(fh) -> str:
    """Who holds a lock, as its file records it."""
    fh.seek(0)
    return fh.read().strip() or "another process"


def check_not_locked(run_dir: Path | str) -> None:
    """Raise :class:`RunLockedError` when a process holds ``run_dir``'s lock (for readers of an
    unfinished run); takes nothing."""
    import fcntl

    try:
        fh = open(Path(run_dir) / LOCK)
    except FileNotFoundError:
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"{run_dir} is being written by {_holder(fh)}; wait for it to finish") from None


def config_hash(config: dict) -> str:
    """A short hash of a config's canonical JSON (for reusing finished steps)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: to a temporary beside it, then renamed over it (safe
    from several threads at once; nothing half-written is left, even when writing fails)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_of(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"))


def write_csv(path: Path, header, rows) -> None:
    """Write a header and rows as CSV, atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_bytes(path, text.getvalue().encode("utf-8"))


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / FINISHED).is_file()


RUNTIME = "runtime"  # config.json's record of what the machine chose (precision, processes): never compared


# Settings renamed since run folders were first written (old → new), as the packages that own them
# register them (:func:`register_renames`). A config is always read under today's names, so a run
# written before a rename is still resumed and reused.
RENAMED_SETTINGS: dict[str, str] = {}
# Settings a package added since, with the value that says what a run written before them did,
# filled into that package's configs (those holding its ``owner`` setting; :func:`register_added`):
# such a run is still resumed and reused.
ADDED_SETTINGS: dict[str, dict[str, object]] = {}


def register_added(owner: str, added: dict[str, object]) -> None:
    """Record settings added to the configs that hold ``owner`` (a setting only they have), each
    with what a run written before it did."""
    ADDED_SETTINGS.setdefault(owner, {}).update(added)


def _with_added(config: dict) -> dict:
    for owner, added in ADDED_SETTINGS.items():
        if owner in config:
            config = {**added, **config}
    return config


def register_renames(renamed: dict[str, str]) -> None:
    """Add a package's renamed settings (old → new) to :data:`RENAMED_SETTINGS`."""
    clashes = sorted(k for k, v in renamed.items() if RENAMED_SETTINGS.get(k, v) != v)
    if clashes:
        raise ValueError(f"settings renamed twice: {', '.join(clashes)}")
    RENAMED_SETTINGS.update(renamed)


def current_names(config: dict) -> dict:
    """``config`` with every renamed setting under its new name (:data:`RENAMED_SETTINGS`); a
    setting given under both names is refused."""
    renamed = {RENAMED_SETTINGS.get(k, k): v for k, v in config.items()}
    if len(renamed) < len(config):
        both = sorted(k for k in RENAMED_SETTINGS if k in config and RENAMED_SETTINGS[k] in config)
        raise ValueError("given under both the old and the new name: "
                         + ", ".join(f"{old} and {RENAMED_SETTINGS[old]}" for old in both))
    return renamed


def settings(config: dict) -> dict:
    """A config under today's names, with settings added since it was written at what it did
    (:data:`ADDED_SETTINGS`), without its :data:`RUNTIME` record: what must match for a resume or a
    reuse."""
    return _with_added({k: v for k, v in current_names(config).items() if k != RUNTIME})


def read_settings(path: Path | str) -> dict:
    """The settings a run's ``config.json`` holds (:func:`settings`); a file that is not one is named."""
    try:
        values = read_json(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable config.json ({exc})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: not a run's config.json (not a JSON object)")
    return settings(values)


def open_run(run_dir: Path, config: dict, *, overwrite: bool = False, resume: bool = False,
             resumable_keys: tuple[str, ...] = ()) -> Path:
    """Prepare ``run_dir`` for a run of ``config`` and write its ``config.json``.

    ``resume`` continues an unfinished (or finished, to extend it) run whose config matches
    except for ``resumable_keys`` (e.g. the iteration count); ``overwrite`` deletes what is there.
    """
    run_dir = Path(run_dir)
    if overwrite and resume:
        raise ValueError("--overwrite and --resume contradict each other; pass one")
    occupied = (run_dir / CONFIG).is_file()
    if occupied and overwrite:
        for entry in run_dir.iterdir():  # everything but the lock its writer holds
            if entry.name != LOCK:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    elif occupied and resume:
        _check_same_config(run_dir, config, resumable_keys)
        (run_dir / FINISHED).unlink(missing_ok=True)
    elif occupied:
        state = "a finished run" if is_finished(run_dir) else "an unfinished run"
        raise RunExistsError(f"{run_dir} holds {state}; pass --resume to continue it, --overwrite to "
                             "replace it, or choose another --name")
    elif resume:
        raise RunExistsError(f"{run_dir}: nothing to resume (no {CONFIG} there)")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG, config)
    return run_dir


def _check_same_config(run_dir: Path, config: dict, resumable_keys: tuple[str, ...]) -> None:
    old, config = settings(read_json(run_dir / CONFIG)), settings(config)
    differing = sorted(k for k in set(old) | set(config)
                       if k not in resumable_keys and json.dumps(old.get(k), default=str, sort_keys=True)
                       != json.dumps(config.get(k), default=str, sort_keys=True))
    if differing:
        details = "; ".join(f"{k}: {old.get(k)!r} → {config.get(k)!r}" for k in differing)
        raise RunExistsError(f"{run_dir}: cannot resume with different settings ({details}); "
                             "pass the run's own settings, or --overwrite")


@contextmanager
def staged_folder(out: Path | str):
    """A fresh temporary folder beside ``out``, yielded to fill; when the block completes it replaces
    ``out`` in one rename, and whatever happens it is removed (nothing half-written is left). One
    process at a time: the lock ``.<name>.lock`` beside ``out`` is held throughout."""
    out = Path(out)
    staging = out.parent / f".{out.name}.{os.getpid()}.partial"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    with RunLock(out, out.parent / f".{out.name}.lock"):
        for stale in out.parent.glob(f".{out.name}.*.partial"):  # a killed writer's: no live one holds the lock
            shutil.rmtree(stale, ignore_errors=True)
        try:
            with writing(staging):
                staging.mkdir(parents=True)
            yield staging
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def mark_finished(run_dir: Path, summary: dict | None = None) -> None:
    write_json(Path(run_dir) / FINISHED, {"finished_at": datetime.now(timezone.utc).isoformat(),
                                          **(summary or {})})
