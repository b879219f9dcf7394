"""v1/v2 training sets: synthetic images only ever train, and missing data says what to run."""
from __future__ import annotations

import pytest

from classifier.config import make_config
from classifier.training.data import SYNTHETIC_SOURCE, SyntheticDataError, build_splits, read_synthetic
from cxrdata import Manifest
from helpers import make_synthetic


def test_v2_adds_synthetic_images_to_train_only(cxr3, tmp_path):
    synth = make_synthetic(tmp_path / "synthetic" / "cpu", cxr3, 3)
    v1 = build_splits(make_config())
    v2 = build_splits(make_config(aug="v2", synth_manifest=str(synth)))
    assert len(v2.train) == len(v1.train) + 3
    added = [r for r in v2.train if r.source == SYNTHETIC_SOURCE]
    assert [r.file for r in added] == [tmp_path / "synthetic" / "cpu" / "images" / f"synthetic-{i:03d}.png"
                                       for i in range(3)]
    assert all(r.file.is_file() for r in added)
    for split in (v1.val, v1.test, v2.val, v2.test, v1.train):
        assert not any(r.source == SYNTHETIC_SOURCE for r in split)
    assert [r.path for r in v2.test] == [r.path for r in v1.test]
    assert v2.class_counts()["train"]["covid"] == v1.class_counts()["train"]["covid"] + 3


def test_missing_synthetic_manifest_names_the_command(tmp_path):
    config = make_config(aug="v2", synth_manifest=str(tmp_path / "nothing" / "manifest.csv"))
    with pytest.raises(SyntheticDataError, match="make synth N=100"):
        build_splits(config)


def test_synthetic_rows_outside_train_are_refused(cxr3, tmp_path):
    with pytest.raises(SyntheticDataError, match="not in the train split"):
        read_synthetic(make_synthetic(tmp_path / "s", cxr3, 2, split="test"))
    leaky = Manifest.read(make_synthetic(tmp_path / "t", cxr3, 1, split="test"), root=tmp_path / "t")
    base = tmp_path / "leaky.csv"
    (cxr3 + leaky).write(base, ["image_id"])
    with pytest.raises(SyntheticDataError, match="synthetic image\\(s\\) in val/test"):
        build_splits(make_config(dataset=str(base)))


def test_synthetic_images_of_test_patients_are_refused(cxr3, tmp_path):
    synth = make_synthetic(tmp_path / "s", cxr3, 2, parents="test")
    with pytest.raises(SyntheticDataError, match="come from val/test patients"):
        build_splits(make_config(aug="v2", synth_manifest=str(synth)))
