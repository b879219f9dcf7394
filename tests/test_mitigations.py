"""``cxr study mitigations`` on a tiny real manifest: every variant and control trains once,
the table's numbers are the runs' own, and a second call reuses everything."""
from __future__ import annotations

import pytest

from conftest import few
from pipelines.studies.mitigations import run_mitigations, table
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
    rates = [read_json(tmp_path / "m" / f"none-seed{s}" / "metrics.json")["cross_source"]
             ["covid_false_positive"]["rate"] for s in (0, 1)]
    assert results["none"]["out_of_source_covid_fp"]["mean"] == pytest.approx(sum(rates) / 2)
    assert results["none"]["within_source_accuracy"] is None  # too few test images per source here
    assert (tmp_path / "m" / "table.md").read_text() == table(results)
    messages.clear()
    run_mitigations(settings, (0, 1), ["none", "all"], tmp_path / "m", log=messages.append)
    assert all(m.endswith("reused") for m in messages)


def test_the_choice_rule_prefers_the_best_score_then_the_simpler_cell_within_a_point():
    from pipelines.studies.choice import choose
    from classifier.config import make_config
    from pipelines.studies.mitigations import CHOICE_GRID, VARIANTS, choice_variant

    def cell(count, weight, score):
        return {"count": count, "weight": weight, "score": {"mean": score}}

    assert choose({"a": cell(50, 0.0, 0.60), "b": cell(0, 0.0, 0.70), "c": cell(0, 0.3, 0.65)}) == "b"
    assert choose({"a": cell(50, 0.3, 0.695), "b": cell(0, 0.0, 0.70), "c": cell(50, 0.0, 0.692)}) == "c"
    assert choose({"a": cell(0, 1.0, 0.70), "b": cell(0, 0.3, 0.699)}) == "b"  # a smaller weight, within a point
    assert [choice_variant(c, w) for c, w in ((0, 0.0), (50, 0.0), (50, 0.3), (0, 1.0))] == [
        "v3", "v3-50", "v3-50+adversary-0.3", "v3+adversary"]
    assert VARIANTS["v3-50+adversary-0.3"]["counterfactual_per_class"] == 50
    assert VARIANTS["v3-50+adversary-0.3"]["source_adversary"] == 0.3 and "source_adversary" not in VARIANTS["v3"]
    for name in ("v3", "v3+adversary"):  # grid cells the table already had: the same runs
        assert make_config(**CHOICE_GRID[name]).to_dict() == make_config(**VARIANTS[name]).to_dict()
