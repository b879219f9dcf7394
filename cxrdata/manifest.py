"""Manifests: CSV files listing images with label, split, patient and checksum.

One fixed class order is used everywhere in the project: :data:`CLASSES`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from runkit.rundir import sha256_of, write_bytes  # noqa: F401 (sha256_of: part of this module's API)

CLASSES = ("normal", "covid", "pneumonia")
SPLITS = ("train", "val", "test")
REQUIRED_COLUMNS = ("path", "label", "split", "patient_id", "source", "sha256")
REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_DIR = REPO_ROOT / "data_manifests"


class ManifestError(ValueError):
    """A manifest is malformed; the message names the file and row."""


class ChecksumError(ValueError):
    """A file's bytes do not match the manifest's sha256; the message names the file."""


def data_root() -> Path:
    """The folder that manifest paths are relative to.

    ``$CXR_DATA`` when set, else ``../shared/data/cxr`` beside the repository when present,
    else ``data/cxr`` inside it.
    """
    if os.environ.get("CXR_DATA"):
        return Path(os.environ["CXR_DATA"]).expanduser().resolve()
    shared = REPO_ROOT.parent / "shared" / "data" / "cxr"
    return shared if shared.is_dir() else REPO_ROOT / "data" / "cxr"


def sidecar_path(csv_path: Path | str) -> Path:
    """``NAME.json`` beside ``NAME.csv``: written by ``cxr data import``, it names the data root."""
    return Path(csv_path).with_suffix(".json")


def manifest_root(csv_path: Path | str) -> Path:
    """The folder ``csv_path``'s relative paths resolve against: the root its sidecar names (an
    imported manifest; a relative root is taken from the sidecar's folder), else :func:`data_root`."""
    sidecar = sidecar_path(csv_path)
    if sidecar.is_file():
        try:  # a relative root is relative to the sidecar's folder (a folder that travels whole)
            return (sidecar.parent / json.loads(sidecar.read_text(encoding="utf-8"))["root"]).resolve()
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{sidecar}: unreadable manifest sidecar ({exc}); re-run cxr data import") from None
    return data_root()


def manifest_dir() -> Path:
    """Where manifest names live: ``$CXR_MANIFESTS`` when set, else ``data_manifests/`` in the repository."""
    return Path(os.environ["CXR_MANIFESTS"]).expanduser() if os.environ.get("CXR_MANIFESTS") else MANIFEST_DIR


def manifest_path(name: str) -> Path:
    """``<manifest_dir()>/<name>.csv`` for a bare name, else ``name`` as a path."""
    if name.endswith(".csv") or os.sep in name:
        return Path(name)
    return manifest_dir() / f"{name}.csv"


@dataclass(frozen=True)
class Record:
    """One image of a manifest. ``file`` is its absolute location."""

    path: str
    label: str
    split: str
    patient_id: str
    source: str
    sha256: str
    file: Path
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def label_index(self) -> int:
        return CLASSES.index(self.label)


class Manifest:
    """An ordered list of :class:`Record` that subsets and concatenations keep aligned."""

    def __init__(self, records: Iterable[Record], name: str = "manifest"):
        self.records = list(records)
        self.name = name
        self.notices: list[str] = []  # problems read with allow_duplicates, for the caller to show

    @classmethod
    def read(cls, csv_path: Path | str, root: Path | str | None = None,
             default_split: str | None = None, allow_duplicates: bool = False) -> "Manifest":
        """Read and validate ``csv_path``; relative paths resolve against ``root`` (default
        :func:`manifest_root`: an imported manifest's own root, else :func:`data_root`). With
        ``default_split`` the split column is optional and rows without a split get that one.

        Refused: a relative path leading outside ``root``, one path with two labels or splits, and
        (unless ``allow_duplicates``, which lists them in :attr:`notices` instead) a path listed
        twice or the same image bytes in two splits, which would leak test images into training."""
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise ManifestError(f"{csv_path}: manifest not found (run `make manifests` to create "
                                "the committed manifests, or check the name)")
        # absolute, so every record's file names the same file from any working directory
        root = Path(root).absolute() if root is not None else manifest_root(csv_path)
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            required = [c for c in REQUIRED_COLUMNS if not (c == "split" and default_split)]
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ManifestError(f"{csv_path}: missing column(s) {', '.join(missing)}; "
                                    f"a manifest needs {', '.join(required)}")
            records = [_record({**row, "split": row.get("split") or default_split} if default_split else row,
                               root, csv_path, line) for line, row in enumerate(reader, start=2)]
        manifest = cls(records, name=csv_path.stem)
        fatal, duplicates = _conflicts(records, first_line=2)
        if fatal or (duplicates and not allow_duplicates):
            problems = fatal + duplicates
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            hint = "" if fatal else " (--allow-duplicates accepts them where a command offers it)"
            raise ManifestError(f"{csv_path}: {shown}{hint}")
        manifest.notices = duplicates
        return manifest

    def write(self, csv_path: Path | str, extra_columns: Iterable[str] = ()) -> None:
        """Write the manifest as CSV (atomically, so concurrent writers never mix), with
        ``extra_columns`` from each record."""
        columns = list(REQUIRED_COLUMNS) + list(extra_columns)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in self.records:
            row = {c: getattr(r, c) for c in REQUIRED_COLUMNS}
            row.update({c: r.extra.get(c, "") for c in extra_columns})
            writer.writerow(row)
        write_bytes(Path(csv_path), text.getvalue().encode("utf-8"))

    def select(self, split: str | None = None, label: str | None = None) -> "Manifest":
        """The records of one split and/or label, in order."""
        kept = [r for r in self.records
                if (split is None or r.split == split) and (label is None or r.label == label)]
        return Manifest(kept, name=f"{self.name}[{split or '*'}/{label or '*'}]")

    def __add__(self, other: "Manifest") -> "Manifest":
        return Manifest(self.records + other.records, name=f"{self.name}+{other.name}")

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, index: int) -> Record:
        return self.records[index]

    @property
    def extra_columns(self) -> list[str]:
        """Every non-required column of the records, in order of first appearance."""
        return list(dict.fromkeys(k for r in self.records for k in r.extra))

    @property
    def labels(self) -> list[int]:
        return [r.label_index for r in self.records]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {label: n}}`` in the fixed class and split order."""
        tally = Counter((r.split, r.label) for r in self.records)
        return {s: {c: tally[(s, c)] for c in CLASSES}
                for s in SPLITS if any(tally[(s, c)] for c in CLASSES)}

    def fingerprint(self) -> str:
        """A short hash of the records' files and checksums (used as a cache key)."""
        digest = hashlib.sha256()
        for r in self.records:
            digest.update(f"{r.file}\0{r.sha256}\0".encode())
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        parts = ", ".join(f"{s}: " + " ".join(f"{c}={n}" for c, n in by.items())
                          for s, by in self.counts().items())
        return f"Manifest({self.name!r}, {len(self)} images; {parts})"


def _record(row: dict, root: Path, csv_path: Path, line: int) -> Record:
    where = f"{csv_path}, line {line}"
    if row.get("label") not in CLASSES:
        raise ManifestError(f"{where}: unknown label {row.get('label')!r}; expected one of {', '.join(CLASSES)}")
    if row.get("split") not in SPLITS:
        raise ManifestError(f"{where}: unknown split {row.get('split')!r}; expected one of {', '.join(SPLITS)}")
    if not row.get("path"):
        raise ManifestError(f"{where}: empty path")
    file = Path(row["path"])
    if not file.is_absolute() and os.path.normpath(file).split(os.sep)[0] == os.pardir:
        raise ManifestError(f"{where}: path {row['path']!r} leads outside the data root {root}")
    file = file if file.is_absolute() else root / file
    core = {c: row[c] or "" for c in REQUIRED_COLUMNS}
    extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS}
    return Record(file=file, extra=extra, **core)


def _conflicts(records: list[Record], first_line: int) -> tuple[list[str], list[str]]:
    """``(fatal, duplicates)``: one path with two labels or splits (fatal); a path listed twice or
    the same bytes in two splits (duplicates). Each problem names the lines involved."""
    by_path, by_bytes = defaultdict(list), defaultdict(list)
    for line, record in enumerate(records, start=first_line):
        by_path[os.path.normpath(record.file)].append((line, record))
        if record.sha256:
            by_bytes[record.sha256].append((line, record))
    fatal, duplicates = [], []
    for rows in by_path.values():
        if len(rows) > 1:
            lines = ", ".join(str(line) for line, _ in rows)
            kinds = {(r.label, r.split) for _, r in rows}
            (fatal if len(kinds) > 1 else duplicates).append(
                f"{rows[0][1].path} is listed on lines {lines}"
                + (" with different labels or splits" if len(kinds) > 1 else " twice"))
    for rows in by_bytes.values():
        splits = {r.split for _, r in rows}
        if len(splits) > 1:
            duplicates.append("the same image bytes are in splits " + ", ".join(sorted(splits)) + ": "
                              + ", ".join(f"{r.path} (line {line}, {r.split})" for line, r in rows))
    return fatal, duplicates


def same_bytes_within_splits(manifest: Manifest) -> list[list[Record]]:
    """Groups of records of one split whose files have the same sha256 (not a leak, but one image
    counted twice)."""
    groups = defaultdict(list)
    for record in manifest:
        if record.sha256:
            groups[(record.split, record.sha256)].append(record)
    return [group for group in groups.values() if len(group) > 1]


def patients_by_sha256(csv_paths: Iterable[Path | str]) -> dict[str, str]:
    """Image sha256 → patient id over the rows of manifest CSVs; a missing or unreadable file is
    skipped (what is known is a help, never a requirement)."""
    known: dict[str, str] = {}
    for path in csv_paths:
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    if row.get("sha256") and row.get("patient_id"):
                        known.setdefault(row["sha256"], row["patient_id"])
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return known


def check_checksum(record: Record) -> None:
    """Raise :class:`ChecksumError` if an existing ``record.file`` differs from its manifest sha256."""
    if record.sha256 and sha256_of(record.file) != record.sha256:
        raise ChecksumError(f"{record.file}: checksum mismatch (manifest sha256 {record.sha256[:12]}…); "
                            "the file is corrupt or a different version: re-download it")
