"""Manifests: CSV files listing images with label, split, patient and checksum.

One fixed class order is used everywhere in the project: :data:`CLASSES`.
"""
from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

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


def manifest_path(name: str) -> Path:
    """``data_manifests/<name>.csv`` for a bare name, else ``name`` as a path."""
    if name.endswith(".csv") or os.sep in name:
        return Path(name)
    return MANIFEST_DIR / f"{name}.csv"


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

    @classmethod
    def read(cls, csv_path: Path | str, root: Path | str | None = None,
             default_split: str | None = None) -> "Manifest":
        """Read and validate ``csv_path``; relative paths resolve against ``root`` (default
        :func:`data_root`). With ``default_split`` the split column is optional and rows
        without a split get that one."""
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise ManifestError(f"{csv_path}: manifest not found (run `make manifests` to create "
                                "the committed manifests, or check the name)")
        root = Path(root) if root is not None else data_root()
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            required = [c for c in REQUIRED_COLUMNS if not (c == "split" and default_split)]
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ManifestError(f"{csv_path}: missing column(s) {', '.join(missing)}; "
                                    f"a manifest needs {', '.join(required)}")
            records = [_record({**row, "split": row.get("split") or default_split} if default_split else row,
                               root, csv_path, line) for line, row in enumerate(reader, start=2)]
        return cls(records, name=csv_path.stem)

    def write(self, csv_path: Path | str, extra_columns: Iterable[str] = ()) -> None:
        """Write the manifest as CSV (atomically), with ``extra_columns`` from each record."""
        csv_path = Path(csv_path)
        columns = list(REQUIRED_COLUMNS) + list(extra_columns)
        tmp = csv_path.with_name(csv_path.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for r in self.records:
                row = {c: getattr(r, c) for c in REQUIRED_COLUMNS}
                row.update({c: r.extra.get(c, "") for c in extra_columns})
                writer.writerow(row)
        os.replace(tmp, csv_path)

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
    file = file if file.is_absolute() else root / file
    core = {c: row[c] or "" for c in REQUIRED_COLUMNS}
    extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS}
    return Record(file=file, extra=extra, **core)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(record: Record) -> None:
    """Raise if ``record.file`` is missing or its checksum differs from the manifest."""
    if not record.file.is_file():
        raise FileNotFoundError(f"{record.file}: file listed in the manifest is missing "
                                f"(data root: {data_root()}; set CXR_DATA or place the files there)")
    check_checksum(record)


def check_checksum(record: Record) -> None:
    """Raise :class:`ChecksumError` if an existing ``record.file`` differs from its manifest sha256."""
    if record.sha256 and sha256_of(record.file) != record.sha256:
        raise ChecksumError(f"{record.file}: checksum mismatch (manifest sha256 {record.sha256[:12]}…); "
                            "the file is corrupt or a different version: re-download it")
