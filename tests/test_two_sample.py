"""The classifier two-sample test on known answers: two halves of one real set are
indistinguishable, an obviously altered set is caught; and the ImageNet-space distances."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrdata import CXRDataset, Manifest
from cxrdata.lungs import feathered
from cyclegan.realism.assessment import seam_check
from runkit.pretrained import lite0_imagenet
from cyclegan.realism.two_sample import imagenet_features, imagenet_realism, two_sample_test


def test_same_distribution_scores_near_half_and_a_shift_near_all():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    groups = [f"p{i}" for i in range(200)]
    same = two_sample_test(a, b, groups, groups)
    assert same["low"] <= 0.5 <= same["high"] and 0.4 < same["accuracy"] < 0.6
    shifted = two_sample_test(a, b + 1.0, groups, groups)
    assert shifted["accuracy"] > 0.95 and shifted["low"] > 0.5
    assert same["images_per_set"] == 200


def test_sets_are_cut_to_one_size_so_half_stays_chance():
    rng = np.random.default_rng(1)
    many, few = rng.normal(size=(300, 8)), rng.normal(size=(60, 8))
    result = two_sample_test(many, few, [f"a{i}" for i in range(300)], [f"b{i}" for i in range(60)])
    assert result["images_per_set"] == 60
    assert 0.3 < result["accuracy"] < 0.7  # not the 83 % of always answering "real"


def test_patients_stay_within_one_fold():
    """Two images of a patient, one in each set, identical: with the patient in one fold the test
    cannot learn the pair, so identical copies score chance, not better."""
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(100, 8))
    groups = [f"p{i}" for i in range(100)]
    assert 0.3 < two_sample_test(rows, rows.copy(), groups, groups)["accuracy"] < 0.7


@pytest.mark.integration
def test_on_real_images_halves_are_chance_and_a_stamped_set_is_caught(cxr3):
    rows = Manifest(cxr3.records[:40], name="forty")
    images = CXRDataset(rows, 64, progress=False).images
    patients = [r.patient_id for r in rows]
    features = imagenet_features(images)
    assert features.shape == (40, 1280)
    halves = two_sample_test(features[::2], features[1::2], patients[::2], patients[1::2])
    assert 0.2 <= halves["accuracy"] <= 0.8
    stamped = images.copy()
    stamped[:, :16, :16] = 255  # a white square in a corner: obvious to anyone
    caught = two_sample_test(features, imagenet_features(stamped), patients, patients)
    assert caught["accuracy"] >= 0.9


def test_imagenet_space_floor_is_below_a_shifted_set():
    rng = np.random.default_rng(3)
    target, alike = rng.normal(size=(200, 1280)), rng.normal(size=(100, 1280))
    result = imagenet_realism(alike + 3.0, target, alike)
    fd = result["frechet_distance"]
    assert max(fd["real target, other half (floor)"], fd["parents (baseline)"]) * 2 < fd["synthetic"]
    assert "first 32 principal components" in result["feature_network"]


@pytest.mark.integration
def test_the_seam_check_catches_an_edge_and_not_the_lungs_inside(cxr3):
    rows = Manifest(cxr3.records[:40], name="forty")
    parents = CXRDataset(rows, 64, progress=False).images
    lungs = torch.zeros(len(parents), 1, 64, 64)
    lungs[:, :, 12:52, 10:54] = 1
    blend = feathered(lungs).squeeze(1).numpy()
    seamed = parents.copy()
    seamed[(blend > 0) & (blend < 1)] = 255  # a bright line along the pasted edge, the lungs untouched
    result = seam_check(parents, seamed, blend, [r.patient_id for r in rows],
                        lite0_imagenet())
    assert result["edge band"]["accuracy"] >= 0.9
    assert 0.2 <= result["ring inside (control)"]["accuracy"] <= 0.8
