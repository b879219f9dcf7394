"""Training, validation and test manifests for v1, v2, v3 and v2+v3.

v1 is the manifest's own splits. v2 adds the rows of a synthesis manifest (made by the cyclegan
package; paths relative to that file's folder) to the training split only; v3 adds the
counterfactual set (source translations with labels kept, `cxr experiment counterfactual`) the
same way; v2+v3 adds both. A synthetic image in a validation or test split would measure the GAN
instead of the classifier, so it is an error.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cxrdata import CLASSES, Manifest, manifest_path

from classifier.config import ClassifierConfig

SYNTHETIC_SOURCE = "synthetic"
SYNTH_COMMAND = "make synth N=100"
COUNTERFACTUAL_COMMAND = "make counterfactual"


class SyntheticDataError(ValueError):
    """The synthetic manifest is missing, or synthetic images would reach val/test."""


@dataclass
class Splits:
    train: Manifest
    val: Manifest
    test: Manifest

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Images per class in each split (the class balance a report shows)."""
        return {name: {c: sum(r.label == c for r in getattr(self, name)) for c in CLASSES}
                for name in ("train", "val", "test")}


def read_synthetic(path: Path | str, aug: str = "v2") -> Manifest:
    """A synthesis manifest, with paths relative to its own folder."""
    path = Path(path)
    if not path.is_file():
        if aug == "v3":
            raise SyntheticDataError(f"{path}: counterfactual manifest not found; v3 needs a source-translation "
                                     f"CycleGAN's images: run `{COUNTERFACTUAL_COMMAND}` first (or pass "
                                     "--counterfactual-set PATH)")
        raise SyntheticDataError(f"{path}: synthetic manifest not found; v2 needs synthetic covid "
                                 f"images: run `{SYNTH_COMMAND}` first (or pass --synth PATH)")
    synthetic = Manifest.read(path, root=path.parent)
    outside_train = [r.path for r in synthetic if r.split != "train"]
    if outside_train:
        raise SyntheticDataError(f"{path}: {len(outside_train)} synthetic row(s) are not in the train "
                                 f"split (e.g. {outside_train[0]}); synthetic images may only train")
    return synthetic


def first_per_label(synthetic: Manifest, count: int, origin: str) -> Manifest:
    """The first ``count`` rows of each label of ``synthetic`` (the set's own order, drawn at random
    when it was made), so that smaller sets are nested in larger ones."""
    counts = Counter(r.label for r in synthetic)
    short = {label: n for label, n in counts.items() if n < count}
    if short:
        raise SyntheticDataError(f"--counterfactual-per-class {count}: {origin} has only "
                                 + ", ".join(f"{n} {label}" for label, n in sorted(short.items()))
                                 + " image(s); choose at most that, or 0 for all")
    seen: Counter = Counter()
    kept = []
    for record in synthetic:
        seen[record.label] += 1
        if seen[record.label] <= count:
            kept.append(record)
    return Manifest(kept, name=f"{synthetic.name}[{count} per label]")


def check_no_synthetic_in_eval(manifest: Manifest, origin: str) -> None:
    """Raise if a row with source ``synthetic`` sits in a val or test split."""
    leaked = [r for r in manifest if r.source == SYNTHETIC_SOURCE and r.split != "train"]
    if leaked:
        raise SyntheticDataError(f"{origin}: {len(leaked)} synthetic image(s) in val/test (e.g. "
                                 f"{leaked[0].path}, split {leaked[0].split}); evaluate on real images only")


def build_splits(config: ClassifierConfig) -> Splits:
    """The train/val/test manifests of ``config`` (v2: synthetic rows added to train)."""
    path = manifest_path(config.dataset)
    base = Manifest.read(path)
    check_no_synthetic_in_eval(base, str(path))
    splits = Splits(train=base.select(split="train"), val=base.select(split="val"), test=base.select(split="test"))
    added = {"v2": [("v2", config.synth_manifest)], "v3": [("v3", config.counterfactual_manifest)],
             "v2+v3": [("v2", config.synth_manifest), ("v3", config.counterfactual_manifest)]}.get(config.aug, [])
    for aug, path in added:
        synthetic = read_synthetic(path, aug)
        if aug == "v3" and config.counterfactual_per_class:
            synthetic = first_per_label(synthetic, config.counterfactual_per_class, path)
        check_no_eval_patients(synthetic, splits, path)
        splits.train = splits.train + synthetic
    return splits


def check_no_eval_patients(synthetic: Manifest, splits: Splits, origin: str) -> None:
    """Raise if a synthetic image carries the patient id of a val or test image (it was made
    from that patient's X-ray, so the test would leak into training)."""
    held_out = {r.patient_id for r in splits.val.records + splits.test.records if r.patient_id}
    leaked = [r for r in synthetic if r.patient_id in held_out]
    if leaked:
        raise SyntheticDataError(f"{origin}: {len(leaked)} synthetic image(s) come from val/test patients "
                                 f"(e.g. {leaked[0].path}, patient {leaked[0].patient_id}); synthesise from "
                                 "training images of this dataset only")
