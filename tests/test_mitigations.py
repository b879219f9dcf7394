"""``cxr pipeline mitigations`` on a tiny real manifest: every variant and control trains once,
the table's numbers are the runs' own, and a second call reuses everything."""
from __future__ import annotations

import pytest

from conftest import few
from pipelines.mitigations import run_mitigations, table
from runkit.rundir import read_json

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]


def test_variants_train_over_seeds_and_the_table_reports_their_numbers(cxr3, tmp_path):
    manifest = few(cxr3, "train", 3) + few(cxr3, "val", 1) + few(cxr3, "test", 2)
    manifest.write(tmp_path / "tiny.csv", ["image_id"])
    settings = {"dataset": str(tmp_path / "tiny.csv"), "epochs": 1, "image_size": 32, "batch_size": 4}
    messages = []
    results = run_mitigations(settings, (0, 1), ["none", "all"], tmp_path / "m", log=messages.append)
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.is_dir()) == [
        "all-lungs-hidden-seed0", "all-seed0", "all-seed1", "none-lungs-hidden-seed0", "none-seed0", "none-seed1"]
    assert read_json(tmp_path / "m" / "all-seed1" / "config.json")["style_augment"] is True
    rates = [read_json(tmp_path / "m" / f"none-seed{s}" / "metrics.json")["cross_source"]["covid_false_positive"]["rate"]
             for s in (0, 1)]
    assert results["none"]["out_of_source_covid_fp"]["mean"] == pytest.approx(sum(rates) / 2)
    assert results["none"]["within_source_accuracy"] is None  # too few test images per source here
    assert (tmp_path / "m" / "table.md").read_text() == table(results)
    messages.clear()
    run_mitigations(settings, (0, 1), ["none", "all"], tmp_path / "m", log=messages.append)
    assert all(m.endswith("reused") for m in messages)
