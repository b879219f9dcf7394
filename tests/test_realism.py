"""The realism measures: the checkerboard on real images, validated both ways, and the
resize-convolution generator that avoids the pattern; the Fréchet distance and k-NN precision /
recall against references and on real images, the fixed feature network, Inception FID's offline
path, and bad synthesis folders."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from cxrdata import CXRDataset, Manifest
from cyclegan.data import to_uint8, to_unit_range
from cyclegan.networks import ResnetGenerator, init_weights
from cyclegan.realism.features import (DEFAULT_NETWORK, FEATURES, FeatureNetworkError, checksum_file, cxr_features,
                                       inception_features, inception_weights_file, load_feature_network, load_inception)
from cyclegan.realism.measures import (TooFewImages, checkerboard, checkerboard_scores, distribution_realism,
                                       frechet_distance, precision_recall)
from cyclegan.realism.assessment import inception_fid
from cyclegan.synth import SynthesisFolderError, remeasure

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def real(cxr3) -> np.ndarray:
    """40 real covid and 40 real normal training images at 96 px."""
    chosen = (cxr3.select(split="train", label="covid").records[:40]
              + cxr3.select(split="train", label="normal").records[:40])
    return CXRDataset(Manifest(chosen), 96, progress=False).images


def checkerboarded(images: np.ndarray, amplitude: int) -> np.ndarray:
    """``images`` plus the period-2 and period-4 pattern two stride-2 transposed convs imprint."""
    y, x = np.mgrid[:images.shape[1], :images.shape[2]]
    pattern = amplitude * (np.where((x % 2) ^ (y % 2), 1, -1) + np.where((x // 2 % 2) ^ (y // 2 % 2), 1, -1))
    return np.clip(images.astype(int) + pattern, 0, 255).astype(np.uint8)


def test_real_images_score_near_their_floor_and_checkerboards_far_above(real):
    covid, normal = checkerboard(real[:40]), checkerboard(real[40:])
    assert 0.5 < covid["mean"] < 3 and 0.5 < normal["mean"] < 3  # real images of two sources: one floor
    assert abs(covid["mean"] - normal["mean"]) < 1
    faint = checkerboard_scores(checkerboarded(real, 2))  # ±4 grey levels at most: hard to see
    assert faint.min() > 10 * covid["mean"], faint.min()
    strong = checkerboard_scores(checkerboarded(real, 8))
    assert strong.mean() > faint.mean()  # more pattern, higher score
    with pytest.raises(ValueError, match="multiple of 4"):
        checkerboard_scores(real[:, :95, :95])


def test_resize_upsampling_imprints_less_checkerboard_than_transposed_convolutions(real):
    """At initialisation, before any training could hide it, a transposed-conv generator's outputs
    carry the pattern; the resize-conv generator's do not (scores near the real floor)."""
    scores = {}
    for upsample in ("transpose", "resize"):
        torch.manual_seed(0)
        generator = init_weights(ResnetGenerator(1, ngf=16, n_blocks=2, upsample=upsample)).eval()
        with torch.no_grad():
            out = generator(to_unit_range(torch.from_numpy(real[:16]).unsqueeze(1)))
        assert out.shape == (16, 1, 96, 96)
        scores[upsample] = checkerboard(to_uint8(out).squeeze(1).numpy())["mean"]
    assert scores["transpose"] > 3 * scores["resize"], scores


# --- the distribution measures: math against references, then on real images ---------------

def test_frechet_distance_matches_scipys_matrix_square_root_and_known_answers():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(size=(150, 8)) * 2 + 1
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    reference = (np.sum((a.mean(0) - b.mean(0)) ** 2)
                 + np.trace(cov_a + cov_b - 2 * np.real(sqrtm(cov_a @ cov_b))))
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    shift = np.arange(8.0)
    assert frechet_distance(a, a + shift) == pytest.approx(np.sum(shift ** 2), rel=1e-9)  # same covariance
    with pytest.raises(TooFewImages, match="needs at least 9 images per set; the second set has 8"):
        frechet_distance(a, b[:8])


def _brute_force_precision_recall(real, generated, k):
    def radius(x, i):
        return sorted(np.linalg.norm(x[i] - x[j]) for j in range(len(x)))[k]

    def inside(point, x):
        return any(np.linalg.norm(point - x[j]) <= radius(x, j) for j in range(len(x)))

    return (np.mean([inside(g, real) for g in generated]), np.mean([inside(r, generated) for r in real]))


def test_precision_recall_match_a_brute_force_reference_and_known_cases():
    rng = np.random.default_rng(1)
    real, generated = rng.normal(size=(30, 4)), rng.normal(size=(25, 4)) * 0.5 + 0.7
    measured = precision_recall(real, generated)
    assert ((measured["precision"], measured["recall"])
            == pytest.approx(_brute_force_precision_recall(real, generated, 3)))
    assert 0 < measured["recall"] < measured["precision"] < 1  # a narrow generated set: real-looking, low coverage
    same = precision_recall(real, real)
    assert same["precision"] == same["recall"] == 1.0
    far = precision_recall(real, generated + 100)
    assert far["precision"] == far["recall"] == 0.0
    with pytest.raises(TooFewImages, match="needs at least 10 images per set; the generated set has 5"):
        precision_recall(real, generated[:5])


@pytest.fixture(scope="module")
def classes(corpus, cxr3) -> dict[str, np.ndarray]:
    """The fixed network's features of the real covid and normal training images at 96 px."""
    net, _ = load_feature_network()
    return {label: cxr_features(net, CXRDataset(cxr3.select(split="train", label=label), 96, progress=False).images)
            for label in ("covid", "normal")}


def test_on_real_images_the_floor_is_low_and_another_class_is_far(classes):
    covid, normal = classes["covid"], classes["normal"]
    assert covid.shape == (263, FEATURES)
    same = distribution_realism(covid, covid)  # no synthetic images: the floor against itself
    other = distribution_realism(normal, covid)  # normal images posing as synthetic covid
    floor = same["frechet_distance"]["real target, other half (floor)"]
    assert same["images_per_set"] == 131 and same["reference_images"] == 132
    assert other["frechet_distance"]["synthetic"] > 5 * floor, (other["frechet_distance"], floor)
    assert same["precision_recall"]["real target, other half (floor)"]["recall"] > 0.8
    assert other["precision_recall"]["synthetic"]["precision"] < same["precision_recall"][
        "real target, other half (floor)"]["precision"]
    few_images = distribution_realism(normal[:40], covid)
    assert "needs at least 65 images per set" in few_images["frechet_distance"]["skipped"]
    assert "precision" in few_images["precision_recall"]["synthetic"]  # 40 are enough for k-NN


def test_the_feature_network_is_refused_without_its_checksum_or_when_changed(tmp_path):
    copy = tmp_path / "net.pt"
    shutil.copy(DEFAULT_NETWORK, copy)
    with pytest.raises(FeatureNetworkError, match=r"net.sha256: the feature network's checksum file is missing"):
        load_feature_network(copy)
    shutil.copy(checksum_file(DEFAULT_NETWORK), checksum_file(copy))
    _, sha = load_feature_network(copy)
    assert sha == checksum_file(DEFAULT_NETWORK).read_text().split()[0]
    copy.write_bytes(copy.read_bytes() + b"x")
    with pytest.raises(FeatureNetworkError, match=r"net.pt: sha256 .* does not match net.sha256"):
        load_feature_network(copy)
    with pytest.raises(FeatureNetworkError, match="missing.pt: the realism feature network is missing"):
        load_feature_network(tmp_path / "missing.pt")


def testinception_fid_says_where_its_weights_go_and_when_there_are_too_few_images(tmp_path, monkeypatch):
    hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        message = load_inception()
        assert isinstance(message, str) and str(inception_weights_file()) in message and "inception_v3" in message
        images = np.zeros((100, 32, 32), np.uint8)
        assert "needs at least 2049 images per set; this synthesis has 50" in inception_fid(images, images, images)
        # with a weights file in place (a randomly initialised one: the shapes are what is tested)
        from torchvision.models import inception_v3

        inception_weights_file().parent.mkdir(parents=True)
        torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
                   inception_weights_file())
        net = load_inception()
        assert inception_features(net, images[:2]).shape == (2, 2048)
    finally:
        torch.hub.set_dir(hub)


def test_a_folder_that_is_not_a_synthesis_is_named(tmp_path):
    with pytest.raises(SynthesisFolderError, match="empty: no manifest.csv; not a synthesis folder"):
        remeasure(tmp_path / "empty")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "manifest.csv").write_text("path,label,split,patient_id,source,sha256\n")
    (tmp_path / "s" / "report.json").write_text("{}")
    with pytest.raises(SynthesisFolderError, match="s: no synthetic images"):
        remeasure(tmp_path / "s")


def test_training_logs_realism_against_the_floor_to_tensorboard(corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cyclegan.config import from_profile
    from cyclegan.train import train

    config = from_profile("cpu", image_size=32, ngf=8, n_blocks=1, ndf=8, iterations=2, log_every=1, sample_every=2,
                          checkpoint_every=2, n_samples=2, realism_every=1, realism_images=70)
    run = train(config, tmp_path / "run", progress=False)
    events = EventAccumulator(str(run)).Reload()
    for name in ("fake_B", "real_A", "floor"):
        for measure in ("frechet", "precision", "recall"):
            assert [e.step for e in events.Scalars(f"realism/{measure}_{name}")] == [1, 2]
    floor = events.Scalars("realism/frechet_floor")[0].value
    assert events.Scalars("realism/frechet_real_A")[0].value > 5 * floor  # normal images are far from covid
    assert [e.step for e in events.Scalars("realism/checkerboard_fake_B")] == [1, 2]
