"""``cxr data import``: a folder or a CSV of a user's images → a checked, patient-grouped manifest.

* A folder holds one subfolder per class (files at any depth below it), optionally below split
  folders (``train/``, ``val/``, ``test/``), as the COVID-19 Radiography Database, COVIDGR and the
  Makris et al. repository are laid out.
* A CSV has a path column and a label column (names given by options) and optional patient,
  source, split and view columns; paths are relative to the CSV's folder and must stay inside it.

Class names map onto the project's classes by :data:`DEFAULT_MAP` (case and separators ignored)
and ``--map NAME=CLASS`` (``CLASS`` may be ``skip``). The manifest is written beside the
project's own (``data_manifests/NAME.csv``) with a sidecar ``NAME.json`` that names the data
root its paths are relative to, so every command that takes a dataset reads it as it is. The
user's files are never copied or changed.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path

from tqdm import tqdm

from .images import ImageReadError, is_dicom, read_grayscale
from runkit.rundir import write_bytes

from .manifest import CLASSES, SPLITS, Manifest, Record, manifest_dir, sha256_of, sidecar_path
from .splits import CXR3_FRACTIONS, DEFAULT_SEED, MAKRIS_VAL_FRACTION, grouped_stratified_split

SKIP = "skip"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff", ".bmp"}
DEFAULT_EXCLUDE = ("*/masks/*", "*/mask/*")  # segmentation masks beside the images (COVID-19 Radiography DB)
# spellings seen in public CXR collections, compared without case, spaces, '-' or '_'
DEFAULT_MAP = {"normal": "normal", "negative": "normal", "nofinding": "normal", "healthy": "normal",
               "covid": "covid", "covid19": "covid", "sarscov2": "covid", "covidpositive": "covid",
               "pneumonia": "pneumonia", "viralpneumonia": "pneumonia", "bacterialpneumonia": "pneumonia",
               "lungopacity": SKIP}
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}
MIN_PER_CLASS = 3  # a class needs an image in each of train, val and test


class DataImportError(ValueError):
    """The data cannot be imported as given; the message names the file, folder or option."""


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


@dataclass
class ImportResult:
    manifest: Manifest
    path: Path
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    duplicates: list[list[str]] = field(default_factory=list)  # groups of files with identical bytes
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counts = self.manifest.counts()
        lines = [f"{self.path}: {len(self.manifest)} images"]
        lines += [f"  {split}: " + " ".join(f"{c}={n}" for c, n in counts[split].items() if n)
                  for split in SPLITS if sum(counts[split].values())]
        return "\n".join(lines)


def parse_maps(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``NAME=CLASS`` options → ``{normalised name: class or skip}``."""
    mapping = {}
    for pair in pairs:
        name, sep, target = pair.partition("=")
        target = target.strip().lower()
        if not sep or not name.strip() or target not in (*CLASSES, SKIP):
            raise DataImportError(f"--map {pair!r}: write NAME=CLASS with CLASS one of {', '.join(CLASSES)} or {SKIP}")
        mapping[_key(name)] = target
    return mapping


def class_of(name: str, mapping: dict[str, str]) -> str | None:
    """The class (or ``skip``) a class name maps to, or None when nothing maps it."""
    return mapping.get(_key(name), DEFAULT_MAP.get(_key(name)))


def _images_below(folder: Path, exclude: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith(".")
                  and not any(fnmatch(p.relative_to(folder.parent).as_posix(), g) for g in exclude)
                  and (p.suffix.lower() in IMAGE_SUFFIXES or is_dicom(p)))


def rows_from_folder(src: Path, mapping: dict[str, str], exclude: tuple[str, ...]) -> list[dict]:
    """One row per image file: its class from its class folder, its split from a split folder above."""
    subfolders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders and any(p.suffix.lower() in IMAGE_SUFFIXES for p in src.iterdir()):
        raise DataImportError(f"{src}: holds image files but no class subfolders; put each class in a folder of "
                              "its own (normal/, covid/, pneumonia/ or names given with --map), or give a CSV")
    split_folders = [p for p in subfolders if p.name.lower() in SPLIT_NAMES]
    parents = [(p, SPLIT_NAMES[p.name.lower()]) for p in split_folders] if split_folders else [(src, "")]
    rows, unmapped = [], set()
    for parent, split in parents:
        for folder in sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")):
            label = class_of(folder.name, mapping)
            if label is None:
                unmapped.add(folder.name)
            elif label != SKIP:
                rows += [{"file": f, "label": label, "split": split, "patient": "", "source": src.name, "view": "",
                          "origin": folder.name} for f in _images_below(folder, exclude)]
    if unmapped:
        raise DataImportError(f"{src}: class folder(s) {', '.join(sorted(unmapped))} map to no class; add --map "
                           f"'NAME=CLASS' (CLASS one of {', '.join(CLASSES)} or {SKIP}) for each")
    return rows


def rows_from_csv(src: Path, mapping: dict[str, str], columns: dict[str, str | None]) -> list[dict]:
    """One row per CSV row; paths relative to the CSV's folder, which they may not leave."""
    root = src.parent.resolve()
    with open(src, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        named = {k: v for k, v in columns.items() if v}
        missing = [f"{v} (--{k}-column)" for k, v in named.items() if v not in (reader.fieldnames or [])]
        if missing:
            raise DataImportError(f"{src}: no column(s) {', '.join(missing)}; it has "
                                  f"{', '.join(reader.fieldnames or [])}")
        rows, unmapped = [], Counter()
        for line, row in enumerate(reader, start=2):
            file = (root / row[columns["path"]].strip()).resolve()
            if not file.is_relative_to(root):
                raise DataImportError(f"{src}, line {line}: path {row[columns['path']]!r} leads outside {root}")
            label = class_of(row[columns["label"]], mapping)
            if label is None:
                unmapped[row[columns["label"]]] += 1
                continue
            if label == SKIP:
                continue
            split = row.get(columns["split"] or "", "").strip().lower()
            if columns["split"] and split not in SPLIT_NAMES:
                raise DataImportError(f"{src}, line {line}: split {split!r} is not one of {', '.join(SPLIT_NAMES)}")
            rows.append({"file": file, "label": label, "split": SPLIT_NAMES.get(split, ""), "line": line,
                         "patient": row.get(columns["patient"] or "", "").strip(),
                         "source": row.get(columns["source"] or "", "").strip() or src.stem,
                         "view": row.get(columns["view"] or "", "").strip(), "origin": row[columns["label"]]})
    if unmapped:
        found = ", ".join(f"{name!r} ({n})" for name, n in unmapped.most_common())
        raise DataImportError(f"{src}: label(s) {found} map to no class; add --map 'NAME=CLASS' for each")
    return rows


def _check_and_hash(rows: list[dict], strict: bool, progress: bool) -> tuple[list[dict], list[tuple[str, str]]]:
    """Rows whose file decodes (with its sha256), and the unreadable ones' (file, reason)."""
    kept, unreadable = [], []
    for row in tqdm(rows, desc="checking images", unit="img", disable=not progress):
        if not row["file"].is_file():
            where = f" (CSV line {row['line']})" if "line" in row else ""
            raise DataImportError(f"{row['file']}{where}: file not found")
        try:
            read_grayscale(row["file"])
        except ImageReadError as exc:
            if strict:
                raise DataImportError(f"{exc} (--strict: nothing written)") from None
            unreadable.append((str(row["file"]), str(exc)))
            continue
        kept.append({**row, "sha256": sha256_of(row["file"])})
    return kept, unreadable


def _assign_splits(rows: list[dict], keep_split: bool, seed: int) -> None:
    """Each row's split: the source's own (a validation split carved from its train patients when
    it has none), or the project's patient-grouped stratified split."""
    keys = [{"patient_id": r["patient"], "label": r["label"], "sha256": r["sha256"]} for r in rows]
    if keep_split:
        if any(not r["split"] for r in rows):
            raise DataImportError("--keep-split: the source has no split for some images (no train/ or test/ folder "
                               "above them, or an empty split column); import without --keep-split")
        if not any(r["split"] == "val" for r in rows):
            train = [k for k, r in zip(keys, rows) if r["split"] == "train"]
            carved = grouped_stratified_split(train, {"train": 1 - MAKRIS_VAL_FRACTION, "val": MAKRIS_VAL_FRACTION},
                                              seed)
            for key, row in zip(keys, rows):
                if row["split"] == "train":
                    row["split"] = carved[key["patient_id"]]
        return
    assignment = grouped_stratified_split(keys, CXR3_FRACTIONS, seed)
    for key, row in zip(keys, rows):
        row["split"] = assignment[key["patient_id"]]


def import_dataset(src: Path | str, name: str, *, maps: tuple[str, ...] = (), keep_split: bool = False,
                   columns: dict[str, str | None] | None = None, exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
                   strict: bool = False, overwrite: bool = False, out_dir: Path | None = None,
                   seed: int = DEFAULT_SEED, progress: bool = True) -> ImportResult:
    """Import ``src`` (a folder or a CSV) as manifest ``name`` in ``out_dir`` (default :func:`manifest_dir`);
    see the module docstring."""
    src = Path(src).expanduser().resolve()
    out_dir = Path(out_dir) if out_dir is not None else manifest_dir()
    target = _target(name, Path(out_dir), overwrite)
    root, rows = _read_rows(src, parse_maps(maps), columns, tuple(exclude))
    rows, unreadable = _check_and_hash(_one_label_per_file(rows), strict, progress)
    _refuse_bytes_with_two_labels(rows)
    counts = _class_counts(src, rows)
    warnings = _name_patients(rows, root, name)
    _assign_splits(rows, keep_split, seed)
    duplicates = _duplicates_within_splits(rows)
    manifest = Manifest([_record(r) for r in rows], name=name)
    sidecar = {"root": str(root.resolve()), "imported_from": str(src), "name": name,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "classes": [c for c in CLASSES if counts[c]], "split": "kept from the source" if keep_split else
               f"patient-grouped stratified {CXR3_FRACTIONS}, seed {seed}",
               "patients": "from the source" if not warnings else "one per image",
               "unreadable_skipped": len(unreadable), "exact_duplicate_groups": len(duplicates)}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    # the sidecar first: a CSV is never without the root its paths are relative to
    write_bytes(sidecar_path(target), (json.dumps(sidecar, indent=2) + "\n").encode())
    manifest.write(target, extra_columns=("image_id", "view", "original_class"))
    return ImportResult(manifest, target, unreadable, duplicates, warnings)


def _target(name: str, out_dir: Path, overwrite: bool) -> Path:
    """``out_dir/NAME.csv``, refused for a bad name or, without ``overwrite``, an existing manifest."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise DataImportError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (it names "
                              "data_manifests/NAME.csv)")
    target = out_dir / f"{name}.csv"
    if target.exists() and not overwrite:
        raise DataImportError(f"{target}: a manifest of that name exists; choose another --name or pass --overwrite")
    return target


def _read_rows(src: Path, mapping: dict, columns: dict[str, str | None] | None,
               exclude: tuple[str, ...]) -> tuple[Path, list[dict]]:
    """The folder or CSV's image rows and the root their paths are relative to."""
    if not src.exists():
        raise DataImportError(f"{src}: no such folder or CSV")
    if src.is_dir():
        root, rows = src, rows_from_folder(src, mapping, exclude)
    elif src.suffix.lower() == ".csv":
        columns = {"path": "path", "label": "label", "patient": None, "source": None, "split": None, "view": None,
                   **(columns or {})}
        root, rows = src.parent, rows_from_csv(src, mapping, columns)
    else:
        raise DataImportError(f"{src}: expected a folder with one subfolder per class, or a CSV")
    if not rows:
        raise DataImportError(f"{src}: no image files found (PNG, JPEG, TIFF, BMP or DICOM)")
    return root, rows


def _one_label_per_file(rows: list[dict]) -> list[dict]:
    """The rows, one per file; a file listed under two labels is refused."""
    by_file = defaultdict(set)
    for row in rows:
        by_file[row["file"]].add(row["label"])
    twice = [f for f, labels in by_file.items() if len(labels) > 1]
    if twice:
        raise DataImportError(f"{twice[0]}: listed under two labels ({', '.join(sorted(by_file[twice[0]]))}); "
                              f"{len(twice)} file(s) so; fix the source or skip one label with --map")
    return list({r["file"]: r for r in rows}.values())


def _refuse_bytes_with_two_labels(rows: list[dict]) -> None:
    labels_by_bytes = defaultdict(set)
    for row in rows:
        labels_by_bytes[row["sha256"]].add(row["label"])
    conflicting = [h for h, labels in labels_by_bytes.items() if len(labels) > 1]
    if conflicting:
        files = [str(r["file"]) for r in rows if r["sha256"] == conflicting[0]]
        raise DataImportError(f"the same image bytes carry two labels: {', '.join(files)}; fix the source")


def _class_counts(src: Path, rows: list[dict]) -> Counter:
    """Images per class; refused with fewer than two classes or too few images of one."""
    counts = Counter(r["label"] for r in rows)
    thin = [f"{c} ({counts[c]})" for c in CLASSES if 0 < counts[c] < MIN_PER_CLASS]
    if thin or len(counts) < 2:
        raise DataImportError(f"{src}: " + (f"too few images of {', '.join(thin)}; each class present needs at least "
                                            f"{MIN_PER_CLASS} (one per split)" if thin else
                                            f"only one class ({', '.join(counts)}); a classifier needs at least two"))
    return counts


def _name_patients(rows: list[dict], root: Path, name: str) -> list[str]:
    """Give each row its path relative to ``root`` and a patient (its own, else one per image);
    return the warning for a source without patient ids."""
    warnings = []
    if not any(r["patient"] for r in rows):
        warnings.append("NO PATIENT IDS: every image is taken as its own patient, so two images of one patient "
                        "can land in different splits; the split keeps exact-byte duplicates together, but "
                        "near-duplicates (re-exports, crops) may still leak. Give a CSV with --patient-column "
                        "if the source has patient ids.")
    for row in rows:
        row["relative"] = row["file"].relative_to(root.resolve()).as_posix()
        row["patient"] = row["patient"] or f"{name}-{row['relative']}"
    return warnings


def _duplicates_within_splits(rows: list[dict]) -> list[list[str]]:
    """Groups of files with identical bytes (all in one split); identical bytes across splits are refused."""
    groups = defaultdict(list)
    for row in rows:
        groups[row["sha256"]].append(row)
    crossing = [g for g in groups.values() if len({r["split"] for r in g}) > 1]
    if crossing:
        raise DataImportError(f"--keep-split: {len(crossing)} image(s) have identical bytes in two of the source's "
                              f"splits (e.g. {', '.join(str(r['file']) for r in crossing[0])}): a test image would be "
                              "trained on; import without --keep-split (the project's split keeps them together)")
    return [[str(r["file"]) for r in g] for g in groups.values() if len(g) > 1]


def _record(row: dict) -> Record:
    return Record(path=row["relative"], label=row["label"], split=row["split"], patient_id=row["patient"],
                  source=row["source"], sha256=row["sha256"], file=row["file"],
                  extra={"image_id": re.sub(r"[^A-Za-z0-9._-]+", "_", row["relative"]), "view": row["view"],
                         "original_class": row["origin"]})
