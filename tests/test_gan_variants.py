"""`cxr study gan-variants` on real images with tiny GANs: every variant × seed trained and
synthesised once, the table's numbers read from the syntheses' reports, reuse, and the grid."""
from __future__ import annotations

import pytest

from pipelines.studies import ganvariants
from runkit.rundir import read_json

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]
TINY = dict(image_size=32, ngf=8, n_blocks=1, ndf=8, log_every=1, sample_every=1, checkpoint_every=1, n_samples=1,
            realism_every=0)


def test_variants_are_measured_over_seeds_and_reused(tmp_path, monkeypatch, corpus):
    monkeypatch.setattr(ganvariants, "VARIANTS", {"transpose-1": {**TINY, "upsample": "transpose", "iterations": 1},
                                                   "resize-2": {**TINY, "upsample": "resize", "iterations": 2}})
    messages = []
    results = ganvariants.run_gan_variants(["transpose-1", "resize-2"], (0, 1), tmp_path, n=70, log=messages.append)
    for variant, iterations in (("transpose-1", 1), ("resize-2", 2)):
        reports = [read_json(tmp_path / f"{variant}-seed{s}" / "synthetic" / "report.json") for s in (0, 1)]
        fd = [r["metrics"]["realism"]["frechet_distance"]["synthetic"] for r in reports]
        assert results[variant]["frechet_distance"]["mean"] == pytest.approx(sum(fd) / 2)
        assert results[variant]["frechet_distance"]["n"] == 2
        assert read_json(tmp_path / f"{variant}-seed1" / "config.json")["iterations"] == iterations
        assert [r["metrics"]["realism"]["images_per_set"] for r in reports] == [70, 70]
        parents = [read_json(tmp_path / f"{variant}-seed{s}" / "synthetic" / "report.json")["seed"] for s in (0, 1)]
        assert parents == [0, 0]  # one parent draw for every GAN
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n") == 4 and "| resize-2 |" in table
    assert (tmp_path / "grid.png").stat().st_size > 0
    messages.clear()
    ganvariants.run_gan_variants(["transpose-1", "resize-2"], (0, 1), tmp_path, n=70, log=messages.append)
    assert len(messages) == 8 and all(m.endswith("reused") for m in messages), messages
