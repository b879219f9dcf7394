"""The lung controls: the v1 recipe retrained on a part of each image, to ask where the label lies.

* ``full``: the whole image (when v1 itself sees another region).
* ``box``: the central 70 % × 70 % square blacked out (49 % of the image; apices, lateral fields and
  costophrenic angles stay visible). The old "lungs hidden" control, kept under its true name.
* ``lungs-removed``: the segmenter's lungs (dilated) blacked out: the headline control.
* ``lungs-only``: everything outside the dilated lungs blacked out, cropped to them.
* ``outline``: the binary lung mask alone: what the lungs' size and shape give away.

A model that never sees the lungs' grey levels (box, lungs-removed, outline) and still beats
chance finds the label outside them. Experiments, studies and reproductions all read these.
"""
from __future__ import annotations

from pathlib import Path

from cxrdata.lungs.regions import REGION_NOTES
from runkit.formatting import markdown_table, pct
from runkit.rundir import read_json

from pipelines.experiment import analysis

LUNG_CONTROLS = {  # name: (classifier settings, what the model sees)
    "full": ({"region": "full"}, REGION_NOTES["full"]),
    "box": ({"hide_lungs": True, "region": "full"}, "the central 70 % × 70 % square blacked out (49 % of the image)"),
    "lungs-removed": ({"region": "lungs-removed"}, REGION_NOTES["lungs-removed"]),
    "lungs-only": ({"region": "lungs-only"}, REGION_NOTES["lungs-only"]),
    "outline": ({"region": "outline"}, REGION_NOTES["outline"]),
}
BLIND = ("box", "lungs-removed", "outline")  # controls that never see the lungs' grey levels


V1 = "v1"


def controls_for(region: str) -> dict:
    """The controls a v1 that sees ``region`` is set beside: every one but v1's own view."""
    return {name: control for name, control in LUNG_CONTROLS.items() if name != region}


def control_summary(name: str, run_dir: Path) -> dict:
    """Accuracy against chance (with a verdict for the controls blind to the lungs), the out-of-source
    covid calls and the Grad-CAM share inside the lungs of one control run (or, as :data:`V1`, of
    the v1 run it is set beside)."""
    predictions = analysis.read_predictions(run_dir)
    summary = (analysis.lungs_hidden_verdict(predictions) if name in BLIND
               else {**analysis.headline(predictions), "chance": analysis.chance_level(predictions)})
    if name == "outline" and summary["accuracy_ci95"][0] > summary["chance"]:
        summary["verdict"] = ("above chance: the lungs' size, shape and place in the frame alone carry label "
                              "information (age, framing, source)")
    metrics = read_json(Path(run_dir) / "metrics.json")
    cams = metrics.get("gradcam", {})
    region = read_json(Path(run_dir) / "config.json").get("region", "full")
    return {**summary, "run": str(run_dir), "sees": LUNG_CONTROLS[name][1] if name != V1 else REGION_NOTES[region],
            "out_of_source_covid_fp": analysis.false_positive(metrics),
            "cam_share_in_lungs": cams.get("mean_lung_share"), "lung_area": cams.get("mean_lung_area")}


def controls_markdown(controls: dict, v1: dict | None = None) -> list[str]:
    """A table of control summaries (``name → control_summary``), with the v1 model's row (``v1``: a
    summary of the same shape) first when given."""
    rows = ([(V1, v1)] if v1 else []) + list(controls.items())
    cells = [[name, c["sees"], f"{pct(c['accuracy'])} [{pct(c['accuracy_ci95'][0])}, {pct(c['accuracy_ci95'][1])}]",
              pct(c.get("chance")), pct((c.get("out_of_source_covid_fp") or {}).get("rate")),
              f"{pct(c.get('cam_share_in_lungs'))} ({pct(c.get('lung_area'))})", c.get("verdict")] for name, c in rows]
    return markdown_table(["control", "what the model sees", "accuracy % [95 % CI]", "commonest class %",
                           "out-of-source covid calls %", "Grad-CAM inside the lungs % (lungs' area %)", "verdict"],
                          cells)
