"""Disease progression (Zebin & Rezvy 2020, Fig. 8): one patient's images in time order with
their Grad-CAM overlays and predicted probabilities, in one figure."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry
from PIL import Image

from classifier.inference.predict import predict_files
from cxrdata.images import ImageReadError
from cxrdata.manifest import Manifest, Record


def timeline(manifest: Manifest, patient_id: str) -> list[Record]:
    """The patient's images with a known ``offset_days``, in time order."""
    records = [r for r in manifest if r.patient_id == patient_id]
    if not records:
        raise ValueError(f"--patient {patient_id}: no such patient in {manifest.name}")
    dated = sorted((r for r in records if r.extra.get("offset_days", "") != ""),
                   key=lambda r: (float(r.extra["offset_days"]), r.path))
    if len(dated) < 2:
        raise ValueError(f"--patient {patient_id}: {len(dated)} image(s) with a known day (offset_days); "
                         "a progression needs at least 2")
    return dated


def progression_candidates(manifest: Manifest, split: str = "test", minimum: int = 3) -> list[str]:
    """Patients of ``split`` with at least ``minimum`` dated images, most images first, covid first."""
    counts: dict[str, list[Record]] = {}
    for r in manifest.select(split=split):
        if r.extra.get("offset_days", "") != "":
            counts.setdefault(r.patient_id, []).append(r)
    eligible = [(p, rs) for p, rs in counts.items() if len(rs) >= minimum]
    eligible.sort(key=lambda item: (item[1][0].label != "covid", -len(item[1]), item[0]))
    return [p for p, _ in eligible]


def render(manifest: Manifest, patient_id: str, run_dir: Path, out: Path, device: str = "auto") -> dict:
    """Write the figure to ``out`` (PNG) and return what it shows."""
    records = timeline(manifest, patient_id)
    overlays = out.parent / f"{out.stem}-overlays"
    results = list(predict_files([r.file for r in records], run_dir, overlays, "predicted", device=device))
    failed = [r for r in results if isinstance(r, ImageReadError)]
    if failed:
        raise failed[0]
    fig = Figure(figsize=(2.6 * len(records), 3.4))
    axes = fig.subplots(1, len(records), squeeze=False)
    for ax, record, prediction in zip(axes[0], records, results):
        ax.imshow(Image.open(prediction.overlay))
        ax.set_axis_off()
        probs = " ".join(f"{c[:3]} {p:.2f}" for c, p in prediction.probabilities.items())
        ax.set_title(f"day {record.extra['offset_days']} ({record.label})\n{probs}", fontsize=8)
    fig.suptitle(f"patient {patient_id}: Grad-CAM for the predicted class, model {Path(run_dir).name}",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return {"patient_id": patient_id, "figure": str(out), "run": str(run_dir),
            "images": [{"path": r.path, "offset_days": r.extra["offset_days"], "true": r.label,
                        "predicted": p.predicted, "probabilities": p.probabilities}
                       for r, p in zip(records, results)]}
