"""The lungs region of the CycleGAN: what its networks see, the composite that keeps the parent
outside the lungs, and the region carried from training to synthesis."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import few
from cxrdata import Manifest
from cxrdata.images import fit_square, read_grayscale
from cxrdata.lungs import default_segmenter
from cxrdata.lungs.cache import fitted_masks
from cxrdata.lungs.regions import dilated
from cxrdata.manifest import sha256_of
from cyclegan.config import from_profile
from cyclegan.data import Domain
from cyclegan.synth import composite, synthesize
from cyclegan.train import train
from runkit.rundir import read_json, settings

SIZE = 64


class Inverting(torch.nn.Module):
    """A stand-in generator that changes every pixel it is given."""

    def forward(self, x):
        return -x


@pytest.fixture(scope="module")
def normals(cxr3) -> Manifest:
    return few(cxr3, "train", 6).select(label="normal")


def test_the_composite_equals_its_parent_outside_the_dilated_lungs(normals):
    parents = np.stack([np.asarray(Image.open(r.file).convert("L").resize((SIZE, SIZE))) for r in normals])
    masks = fitted_masks(normals, SIZE, default_segmenter(), progress=False)
    synthetic, weights = composite(Inverting(), parents, masks, torch.device("cpu"), progress=False)
    outside = ~dilated(torch.from_numpy(masks).float().unsqueeze(1)).squeeze(1).bool().numpy()
    assert outside.any() and (~outside).any()
    assert np.array_equal(synthetic[outside], parents[outside])  # bit for bit
    assert (weights[outside] == 0).all()
    inside_lungs = masks & (weights == 1)
    changed = np.abs(synthetic.astype(int) - parents.astype(int))[inside_lungs]
    assert changed.mean() > 20  # the lungs were translated (inverted), not left alone


def test_the_lungs_region_shows_the_networks_only_the_lungs(normals):
    full = Domain(normals, 72, SIZE, progress=False)
    lungs = Domain(normals, 72, SIZE, progress=False, region="lungs")
    assert full.fixed(2).masks is None
    images, masks = lungs.fixed(len(lungs))
    assert images.shape == masks.shape == (len(lungs), 1, SIZE, SIZE)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    assert (images[masks == 0] == -1).all()  # black outside the lungs
    assert (images[masks == 1] > -1).float().mean() > 0.9
    drawn = lungs.batch(3, torch.Generator().manual_seed(0))
    assert (drawn.images[drawn.masks == 0] == -1).all()  # crops and flips move mask and image together


def test_the_region_travels_from_training_to_synthesis(cxr3, tmp_path):
    subset = few(cxr3, "train", 3)
    csv = tmp_path / "tiny.csv"
    subset.write(csv, extra_columns=("image_id",))
    config = from_profile("cpu", dataset=str(csv), region="lungs", image_size=32, ngf=8, n_blocks=2, ndf=8,
                          iterations=2, log_every=1, sample_every=2, checkpoint_every=2, n_samples=2,
                          realism_every=0)
    run = train(config, tmp_path / "run", progress=False)
    assert read_json(run / "config.json")["region"] == "lungs"
    with pytest.raises(ValueError, match=r"--region full: .*trained on the lungs region"):
        synthesize(run, 2, out=tmp_path / "refused", region="full", progress=False)
    assert not (tmp_path / "refused").exists()
    out = synthesize(run, 2, out=tmp_path / "synth", progress=False)
    made = Manifest.read(out / "manifest.csv", root=out)
    assert {r.extra["region"] for r in made} == {"lungs"}
    for record in made:
        blend = np.asarray(Image.open(out / record.extra["blend_mask"]))
        parent = next(r for r in subset if r.path == record.extra["parent_path"])
        square = fit_square(read_grayscale(parent.file), 32)  # the parent as synthesis read it
        synthetic = np.asarray(Image.open(record.file))
        assert blend.shape == synthetic.shape and (blend == 0).any() and (blend > 0).any()
        assert np.array_equal(synthetic[blend == 0], square[blend == 0])
    assert read_json(out / "report.json")["region"] == "lungs"


def test_parents_without_plausible_lungs_are_passed_over_and_named(cxr3, tmp_path, capsys):
    subset = few(cxr3, "train", 3)
    first = subset.select(label="normal")[0]
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((128, 128), dtype=np.uint8)).save(blank)  # not a chest X-ray: no lungs
    odd = dataclasses.replace(first, path=str(blank), file=blank, sha256=sha256_of(blank), patient_id="blank-1",
                              extra={**first.extra, "image_id": "blank"})
    csv = tmp_path / "with-blank.csv"
    Manifest(subset.records + [odd], name="with-blank").write(csv, extra_columns=("image_id",))
    config = from_profile("cpu", dataset=str(csv), region="lungs", image_size=32, ngf=8, n_blocks=2, ndf=8,
                          iterations=1, log_every=1, sample_every=1, checkpoint_every=1, n_samples=2,
                          realism_every=0)
    run = train(config, tmp_path / "run", progress=False)
    assert "1 image(s) left out, no plausible lungs" in capsys.readouterr().out  # training left it out, said so
    normals = len(subset.select(label="normal"))
    out = synthesize(run, normals, out=tmp_path / "synth", seed=0, progress=False)
    said = capsys.readouterr().out
    assert f"skipped, no plausible lungs: {blank}: no lungs found" in said
    report = read_json(out / "report.json")
    assert len(report["skipped_no_plausible_lungs"]) == 1
    assert "Parents passed over for implausible lungs: 1" in (out / "report.md").read_text()
    made = Manifest.read(out / "manifest.csv", root=out)
    assert len(made) == normals and "blank" not in {r.extra["parent_image_id"] for r in made}
    with pytest.raises(ValueError, match=rf"--n {normals + 1} exceeds the {normals} training images .*1 more have no "
                                         "plausible lungs"):
        synthesize(run, normals + 1, out=tmp_path / "too-many", progress=False)


def test_a_gan_run_from_before_the_region_reads_as_the_whole_image():
    config = from_profile("cpu").to_dict()
    older = {k: v for k, v in config.items() if k != "region"}
    assert settings(older) == config  # reused and resumed as it was
    assert settings({"epochs": 3}) == {"epochs": 3}  # other packages' configs are left alone
    assert settings({**older, "region": "lungs"})["region"] == "lungs"
