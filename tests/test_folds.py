"""Grouped k-fold: every image tested exactly once, no patient in two folds or two splits."""
from __future__ import annotations

from collections import defaultdict

import pytest

from cxrdata.manifest import Manifest
from conftest import HAVE_CORPUS
from cxrdata.folds import kfold_manifests, write_folds


def test_each_image_is_tested_once_and_patients_never_cross(cxr3):
    folds = kfold_manifests(cxr3, 5, seed=0)
    tested = defaultdict(int)
    for fold in folds:
        splits_of = defaultdict(set)
        for r in fold:
            splits_of[r.patient_id].add(r.split)
            tested[r.path] += r.split == "test"
        assert not [p for p, s in splits_of.items() if len(s) > 1], fold.name
        sizes = {s: sum(c.values()) / len(fold) for s, c in fold.counts().items()}
        tolerance = 0.03 if HAVE_CORPUS else 0.06  # the small set's 92 images in whole patients: coarser
        assert sizes["test"] == pytest.approx(0.2, abs=tolerance)
        assert sizes["val"] == pytest.approx(0.1, abs=tolerance)
    assert set(tested.values()) == {1} and len(tested) == len(cxr3)
    fold_of = defaultdict(set)
    for i, fold in enumerate(folds):
        for r in fold.select(split="test"):
            fold_of[r.patient_id].add(i)
    assert max(len(f) for f in fold_of.values()) == 1


def test_written_folds_read_back_identically(cxr3, tmp_path):
    folds = kfold_manifests(cxr3, 3, seed=1)
    paths = write_folds(folds, tmp_path)
    again = Manifest.read(paths[2])
    assert [(r.file, r.split) for r in again] == [(r.file, r.split) for r in folds[2]]


def test_too_few_patients_for_k_is_a_clear_error(cxr3):
    tiny = Manifest(cxr3.select(label="covid").records[:3] + cxr3.select(label="normal").records[:30]
                    + cxr3.select(label="pneumonia").records[:30], name="tiny")
    with pytest.raises(ValueError, match="--folds 5: too few patients.*covid: 3"):
        kfold_manifests(tiny, 5, seed=0)
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold_manifests(cxr3, 1, seed=0)
