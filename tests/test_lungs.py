"""The lung segmenter: mask geometry against references, the regions a model sees, the human masks'
checks, the shipped segmenter's held-out Dice, cross-fitting, and the mask cache."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from sklearn.metrics import pairwise_distances

from cxrdata.images import read_grayscale
from cxrdata.lungs import cache as mask_cache
from cxrdata.lungs.geometry import dice, dilate, hd95, shape_of
from cxrdata.download import ResumingHTTP
from cxrdata.lungs.fetch import fetch_masks, render
from cxrdata.lungs.human import MaskError, masks_root, pixels_sha256, read_mask, read_mask_manifest
from cxrdata.lungs.regions import REGIONS, apply_region, dilated, lung_box, sampling_grid
from cxrdata.lungs.segmenter import Segmenter, SegmenterError, default_segmenter, fold_of_id, write_segmenter
from cxrdata.lungs.network import build_network
from cxrdata.lungs.training import SegmenterSettings, fold_manifests, train_segmenter
from cxrdata.manifest import Manifest
from pipelines.cli import main

from conftest import RAW_SAMPLES
from mirror_server import MirrorServer


def square(size=64, top=10, left=10, side=20) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def brute_hd95(a: np.ndarray, b: np.ndarray) -> float:
    """The same measure from every pair of boundary points (scikit-learn's distances)."""
    from scipy import ndimage

    def edge(m):
        return np.argwhere(m & ~ndimage.binary_erosion(m, border_value=0))

    distances = pairwise_distances(edge(a), edge(b))
    return max(np.percentile(distances.min(1), 95), np.percentile(distances.min(0), 95))


def test_dice_and_hd95_known_answers():
    a = square()
    shifted = np.roll(a, 3, axis=1)
    assert dice(a, a) == 1.0 and dice(a, ~a) == 0.0
    assert dice(a, shifted) == pytest.approx(2 * 17 * 20 / 800)
    assert hd95(a, shifted) == pytest.approx(3.0)
    assert hd95(a, np.zeros_like(a)) == float("inf") and hd95(~a & a, ~a & a) == 0.0
    rng = np.random.default_rng(0)
    blob = dilate(rng.random((48, 48)) > 0.995, 0.08)
    assert hd95(blob, a[:48, :48]) == pytest.approx(brute_hd95(blob, a[:48, :48]))


def test_shape_flags_implausible_lungs():
    two_lungs = square(100, 20, 10, 35) | square(100, 20, 55, 35)
    assert shape_of(two_lungs).problem is None and shape_of(two_lungs).pieces == 2
    assert shape_of(np.zeros((100, 100), bool)).problem == "no lungs found"
    assert "too small" in shape_of(square(100, 40, 40, 20)).problem
    assert "too large" in shape_of(np.ones((100, 100), bool)).problem
    speckled = np.zeros((100, 100), bool)
    speckled[10::25, 10::25] = True
    assert shape_of(dilate(speckled, 0.06)).problem == "lungs in 16 pieces"
    assert shape_of(dilate(speckled, 0.03)).problem == "no lungs found"  # specks alone are no lungs


def test_regions_show_what_they_say():
    images = torch.rand(2, 1, 64, 64) * 0.9 + 0.1  # no zero pixels of its own
    masks = torch.zeros(2, 1, 64, 64)
    masks[0, 0, 20:40, 10:30] = 1  # the second image has no lungs
    grown = dilated(masks)
    assert int(grown[0].sum()) == 24 * 24  # 3 % of 64 px rounds to 2 px on each side
    assert torch.equal(apply_region(images, masks, "full"), images)
    removed = apply_region(images, masks, "lungs-removed")
    assert (removed[grown > 0] == 0).all() and torch.equal(removed[grown == 0], images[grown == 0])
    assert torch.equal(apply_region(images, masks, "outline"), masks)
    theta = lung_box(grown)
    assert torch.allclose(theta[0], torch.tensor([[0.375, 0, -0.375], [0, 0.375, -0.0625]]))
    assert torch.equal(theta[1], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    only = apply_region(images, masks, "lungs-only")
    seen = torch.nn.functional.grid_sample(grown, torch.nn.functional.affine_grid(theta, [2, 1, 64, 64], False),
                                           mode="nearest", align_corners=False)
    assert (only[seen == 0] == 0).all() and (only[seen > 0] > 0).float().mean() > 0.99  # cropped to the lungs
    assert seen[0].mean() > 0.95  # the square around the lungs fills the frame
    assert torch.equal(sampling_grid(theta, 64, 48), torch.nn.functional.affine_grid(theta, [2, 1, 64, 48], False))
    assert (only[1] == 0).all()  # no lungs: nothing is shown
    with pytest.raises(ValueError, match="unknown region 'lungs'"):
        apply_region(images, masks, "lungs")
    assert set(REGIONS) == {"full", "lungs-removed", "lungs-only", "outline"}


def test_a_changed_or_resized_mask_is_refused_in_one_line(tmp_path, monkeypatch):
    record = read_mask_manifest()[0]
    assert read_mask(record).shape == read_grayscale(record.file).shape
    root = tmp_path / "masks"
    shutil.copytree(masks_root(), root)
    monkeypatch.setenv("CXR_LUNG_MASKS", str(root))
    changed = root / record.extra["mask"]
    with Image.open(changed) as mask:
        pixels = np.asarray(mask.convert("L")).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(changed)
    with pytest.raises(MaskError) as error:
        read_mask(record)
    assert "\n" not in str(error.value) and str(changed) in str(error.value) and "sha256" in str(error.value)
    Image.fromarray(pixels).resize((pixels.shape[1] + 1, pixels.shape[0])).save(changed)
    with pytest.raises(MaskError, match="mask is .* but its image .* is"):
        read_mask(record)


@pytest.mark.integration
def test_masks_are_fetched_verified_and_rendered_at_their_image_size(tmp_path):
    record = read_mask_manifest()[0]
    width, height = int(record.extra["width"]), int(record.extra["height"])
    upstream = io.BytesIO()
    Image.fromarray(read_mask(record).astype(np.uint8) * 255).resize((4 * width, 4 * height)).save(upstream, "PNG")
    upstream = upstream.getvalue()
    extra = {**record.extra, "v7_mask_id": "123", "v7_mask_sha256": hashlib.sha256(upstream).hexdigest(),
             "mask_sha256": pixels_sha256(render(upstream, width, height))}
    manifest = Manifest([dataclasses.replace(record, extra=extra)], name="one")
    downloader = ResumingHTTP(tmp_path / "partial", timeout=5, progress=False)
    with MirrorServer({"/v7/123.png": upstream}) as server:
        fetched, skipped, failed = fetch_masks(manifest, tmp_path / "masks", downloader, 0, f"{server.url}/v7")
        assert (fetched, skipped, failed) == ([extra["image_id"]], [], [])
        written = tmp_path / "masks" / extra["mask"]
        with Image.open(written) as mask:
            assert mask.size == (width, height)
        assert fetch_masks(manifest, tmp_path / "masks", downloader, 0, f"{server.url}/v7")[1] == [extra["image_id"]]
        written.unlink()
        server.files["/v7/123.png"] = upstream + b"changed"
        fetched, _, failed = fetch_masks(manifest, tmp_path / "masks", downloader, 0, f"{server.url}/v7")
    assert not fetched and failed[0][0] == extra["image_id"] and f"{server.url}/v7/123.png" in failed[0][1]
    assert not written.exists() and not list((tmp_path / "masks" / ".fetch").glob("*.png"))


def held_out_dice(segmenter: Segmenter) -> list[float]:
    annotated = read_mask_manifest()
    predicted = mask_cache.lung_masks(annotated, segmenter, progress=False)
    return [dice(mask, read_mask(r)) for r, mask in zip(annotated, predicted)]


@pytest.mark.usefixtures("one_thread")
def test_the_shipped_segmenter_finds_the_human_lungs_and_random_weights_do_not(tmp_path):
    shipped = default_segmenter()
    assert all(r.patient_id in shipped.patient_folds for r in read_mask_manifest())  # every one held out
    scores = held_out_dice(shipped)
    assert np.mean(scores) > 0.9 and np.median(scores) > 0.92, np.round(scores, 3)
    torch.manual_seed(0)
    random_weights = [build_network(imagenet=False).state_dict() for _ in range(shipped.folds)]
    write_segmenter(tmp_path / "random.safetensors", random_weights, shipped.patient_folds, shipped.info)
    assert np.mean(held_out_dice(Segmenter(tmp_path / "random.safetensors"))) < 0.6


def test_cross_fitting_never_segments_a_patient_with_a_model_that_trained_on_it(tmp_path):
    settings = SegmenterSettings(image_size=32, folds=2, epochs=1, batch_size=8)
    annotated = read_mask_manifest()
    path = train_segmenter(tmp_path / "run", annotated, settings, progress=False)
    segmenter = Segmenter(path)
    for fold, manifest in enumerate(fold_manifests(annotated, settings)):
        trained_on = {r.patient_id for r in manifest if r.split in ("train", "val")}
        held_out = {r.patient_id for r in manifest if r.split == "test"}
        assert held_out and not trained_on & held_out
        assert all(segmenter.fold_for(p, "") == fold for p in held_out)
        assert not any(segmenter.fold_for(p, "") == fold for p in trained_on)
    assert segmenter.fold_for("nih-12345", "x") == fold_of_id("nih-12345", 2)  # a patient it never saw
    assert segmenter.fold_for("", "ab" * 32) == fold_of_id("ab" * 32, 2)  # an image with no patient: by its bytes
    again = train_segmenter(tmp_path / "run", annotated, settings, resume=True, progress=False)
    assert again.read_bytes() == path.read_bytes()  # a resumed run reuses its finished folds


def test_cached_masks_are_reused_and_a_new_segmenter_invalidates_them(tmp_path, monkeypatch):
    manifest = Manifest(read_mask_manifest().records[:3], name="three")
    shipped = default_segmenter()
    first = mask_cache.lung_masks(manifest, shipped, progress=False)
    monkeypatch.setattr(Segmenter, "masks", lambda *a, **k: pytest.fail("a cached mask was predicted again"))
    assert all(np.array_equal(a, b) for a, b in zip(first, mask_cache.lung_masks(manifest, shipped, progress=False)))
    monkeypatch.undo()
    other = tmp_path / "other.safetensors"
    write_segmenter(other, [build_network(imagenet=False).state_dict() for _ in range(shipped.folds)],
                    shipped.patient_folds, shipped.info)
    calls = []
    original = Segmenter.masks
    monkeypatch.setattr(Segmenter, "masks", lambda self, grays, fold: calls.append(fold) or original(self, grays, fold))
    mask_cache.lung_masks(manifest, Segmenter(other), progress=False)
    assert len(calls) >= 1  # another file, other masks


def test_loading_a_segmenter_leaves_the_random_numbers_of_a_run_alone():
    """A run that loads the segmenter mid-way (its masks) must draw the same random numbers as one
    whose process had loaded it before, or its result would depend on what ran before it."""
    torch.manual_seed(0)
    Segmenter()
    after_loading = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), after_loading)


def test_a_broken_segmenter_file_is_named(tmp_path):
    broken = tmp_path / "lung-unet.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(SegmenterError, match=str(broken)):
        Segmenter(broken)
    with pytest.raises(SegmenterError, match="not found"):
        Segmenter(tmp_path / "absent.safetensors")


def test_segment_command_writes_masks_and_flags_what_has_no_lungs(tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((256, 256), 128, np.uint8)).save(blank)
    xray = RAW_SAMPLES / "derived-16bit-from-normal.png"
    result = CliRunner().invoke(main, ["lungs", "segment", str(xray), str(blank), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "lungs" in lines[0] and "of the image" in lines[0]
    assert lines[1].startswith(f"{blank}: ") and "is this a frontal chest X-ray?" in lines[1]
    assert (tmp_path / "out" / f"{xray.stem}-lungs.png").is_file()
