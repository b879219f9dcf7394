"""The default-classifier study: its rule, and the whole study at tiny scale on real images."""
from __future__ import annotations

import json

import pytest

from cxrdata.manifest import Manifest
from conftest import few
from pipelines.studies import backbone_choice
from pipelines.studies.backbone_choice import CHALLENGER, DEFAULT, decide, run_backbone_choice


def cell(score: float, seconds: float | None) -> dict:
    return {"score": {"mean": score}, "seconds": None if seconds is None else {"mean": seconds}}


@pytest.mark.parametrize("challenger, expected", [
    (cell(0.62, 100), CHALLENGER),  # 2 points better, same time
    (cell(0.605, 100), DEFAULT),  # within the 1-point margin: the default stays
    (cell(0.70, 151), DEFAULT),  # much better but more than 1.5x slower
    (cell(0.70, 150), CHALLENGER),  # exactly 1.5x is allowed
    (cell(0.70, None), DEFAULT),  # a time not measured cannot pass the time bound
])
def test_the_rule(challenger, expected):
    assert decide({DEFAULT: cell(0.60, 100), CHALLENGER: challenger}) == expected


@pytest.mark.integration
@pytest.mark.usefixtures("one_thread")
def test_the_study_at_tiny_scale(corpus, cxr3, tmp_path, monkeypatch):
    """Validation needs ieee8023 covid and pneumonia (5 each) for the within-source score."""
    val = [r for r in cxr3 if (r.split, r.source, r.label) == ("val", "ieee8023", "covid")][:5]
    val += [r for r in cxr3 if (r.split, r.source, r.label) == ("val", "ieee8023", "pneumonia")][:5]
    val += cxr3.select(split="val", label="normal").records[:2]
    manifest = few(cxr3, "train", 4) + Manifest(val) + few(cxr3, "test", 2)
    manifest.write(tmp_path / "tiny.csv", ["image_id"])
    monkeypatch.setitem(backbone_choice.CANDIDATES, CHALLENGER,
                        {**backbone_choice.CANDIDATES[CHALLENGER], "head_epochs": 1})
    settings = {"dataset": str(tmp_path / "tiny.csv"), "image_size": 32, "epochs": 2, "batch_size": 8}
    result = run_backbone_choice(settings, (0,), tmp_path / "study", log=lambda line: None)
    assert result["chosen"] in (DEFAULT, CHALLENGER)
    challenger = json.loads((tmp_path / "study" / f"{CHALLENGER}-seed0" / "config.json").read_text())
    assert challenger["backbone"] == "efficientnet_lite0" and challenger["weights"] == "imagenet"
    assert all(c["seconds"]["mean"] > 0 for c in result["cells"].values())
    assert (tmp_path / "study" / f"{DEFAULT}-seed0-val" / "metrics.json").is_file()  # scored on validation
    assert "(chosen)" in (tmp_path / "study" / "choice.md").read_text()
    again = run_backbone_choice(settings, (0,), tmp_path / "study", log=lambda line: None)  # reused, times kept
    assert again["cells"][DEFAULT]["seconds"] == result["cells"][DEFAULT]["seconds"]
