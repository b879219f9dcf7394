"""Labelled images a user brings for evaluation: a folder arranged by class, or a manifest CSV.

* A folder holds one subfolder per class, named after any of :data:`CLASSES` (case does not
  matter), with image files (PNG, JPEG, DICOM) at any depth below it. Each file becomes its own
  patient (no patient ids are known) and its source is the folder's name.
* A manifest CSV (or the name of one in ``data_manifests/``, e.g. ``cxr3``) has the project's
  columns (``path,label,patient_id,source,sha256``; ``split`` optional, ``sha256`` may be empty).
  Relative paths resolve against ``root`` (default: an imported manifest's own root, else the data
  root, as for the project's own manifests). Every row is used unless a split is chosen.
"""
from __future__ import annotations

from pathlib import Path

from cxrdata import CLASSES, SPLITS, Manifest, Record, manifest_path
from cxrdata.manifest import sha256_of


class LabelledDataError(ValueError):
    """The data to evaluate on cannot be used; the message names the path or option."""


def read_labelled(data: Path | str, *, split: str | None = None, ignore_unknown: bool = False,
                  root: Path | str | None = None) -> tuple[Manifest, list[str]]:
    """The images of ``data`` as a manifest, and the class folders ignored (``ignore_unknown``)."""
    named = manifest_path(str(data))
    data = Path(data) if Path(data).exists() or not named.is_file() else named
    if data.is_dir():
        if split:
            raise LabelledDataError(f"--split {split}: a folder arranged by class has no splits; "
                                    "pass --split only with a manifest CSV")
        return from_folder(data, ignore_unknown)
    if data.is_file() and data.suffix.lower() == ".csv":
        return from_manifest(data, split, root), []
    if not data.exists():
        raise LabelledDataError(f"{data}: no such folder or file")
    raise LabelledDataError(f"{data}: expected a folder with one subfolder per class "
                            f"({', '.join(CLASSES)}) or a manifest .csv")


def from_folder(folder: Path, ignore_unknown: bool = False) -> tuple[Manifest, list[str]]:
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subfolders if p.name.lower() not in CLASSES]
    if unknown and not ignore_unknown:
        raise LabelledDataError(f"{folder}: class folder(s) {', '.join(unknown)} are not classes this "
                                f"model knows; accepted names: {', '.join(CLASSES)} (pass --ignore-unknown "
                                "to leave them out)")
    records = []
    for sub in subfolders:
        if sub.name.lower() not in CLASSES:
            continue
        for file in sorted(p for p in sub.rglob("*") if p.is_file() and not p.name.startswith(".")):
            relative = file.relative_to(folder).as_posix()
            records.append(Record(path=relative, label=sub.name.lower(), split="test",
                                  patient_id=relative, source=folder.name, sha256=sha256_of(file),
                                  file=file, extra={"image_id": relative.replace("/", "_")}))
    if not records:
        raise LabelledDataError(f"{folder}: no files found in class folders; expected subfolders named "
                                f"{', '.join(CLASSES)} holding PNG, JPEG or DICOM files")
    return Manifest(records, name=folder.name), unknown


def from_manifest(path: Path, split: str | None, root: Path | str | None) -> Manifest:
    manifest = Manifest.read(path, root=root, default_split="test")
    if split:
        if split not in SPLITS:
            raise LabelledDataError(f"--split {split}: choose one of {', '.join(SPLITS)}")
        manifest = manifest.select(split=split)
        manifest.name = f"{path.stem}-{split}"
        if not len(manifest):
            raise LabelledDataError(f"{path}: no rows in split {split!r}")
    if not len(manifest):
        raise LabelledDataError(f"{path}: the manifest lists no images")
    return manifest
