"""``cxr study precision``: does a bf16 CycleGAN train as well as an fp32 one?

CycleGAN runs at the CPU profile for each seed in both precisions, then N images synthesised by
each. Per run: the mean of each loss over the last tenth of its logged iterations, the synthesis
report's metrics, and the speed. A bf16 mean counts as within the fp32 spread when it lies in
the fp32 seeds' min–max range. Finished runs are reused.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cyclegan.config import from_profile
from cyclegan.model import LOSS_NAMES
from cyclegan.synth import synthesize
from cyclegan.train import train as train_gan
from runkit.formatting import markdown_table
from runkit.rundir import read_json, runs_root, write_json

from pipelines.experiment.steps import ensure

RUNS_ROOT = runs_root("precision")
PRECISIONS = ("fp32", "bf16")
LAST_SHARE = 0.1


def run_precision_check(seeds: tuple[int, ...], out_dir: Path, gan_settings: dict | None = None,
                        n_synthetic: int = 100, overwrite: bool = False, progress: bool = True, log=print) -> Path:
    """Train, synthesise and measure every (precision, seed); write ``results.json`` and
    ``table.md`` in ``out_dir`` and return the table's path."""
    rows = []
    for precision in PRECISIONS:
        for seed in seeds:
            config = from_profile("cpu", **{**(gan_settings or {}), "seed": seed, "precision": precision})
            run, how = ensure(out_dir / f"gan-{precision}-seed{seed}", config.to_dict(),
                              lambda d, **kw: train_gan(config, d, progress=progress, **kw), overwrite=overwrite)
            log(f"GAN {run}: {how}")
            synthetic = out_dir / f"synthetic-{precision}-seed{seed}"
            if how != "reused" or not (synthetic / "report.json").is_file():
                synthesize(run, n_synthetic, seed=0, out=synthetic, overwrite=True, progress=progress)
            rows.append({"precision": precision, "seed": seed, **run_measures(run, synthetic / "report.json")})
    write_json(out_dir / "results.json", rows)
    path = out_dir / "table.md"
    path.write_text(table(rows), encoding="utf-8")
    return path


def run_measures(run: Path, synthesis_report: Path) -> dict:
    """The last losses, the speed and the synthesis metrics of one run."""
    events = EventAccumulator(str(run)).Reload()
    out = {}
    for name in LOSS_NAMES:
        values = [s.value for s in events.Scalars(f"loss/{name}")]
        out[f"loss {name}"] = statistics.fmean(values[-max(1, round(LAST_SHARE * len(values))):])
    out["s/iter"] = statistics.median(1 / s.value for s in events.Scalars("iterations_per_s"))
    metrics = read_json(synthesis_report)["metrics"]
    out["synthetic: change from parent"] = metrics["mean_abs_change_from_parent"]["mean"]
    out["synthetic: nearest real target"] = metrics["nearest_real_target_distance"]["synthetic"]["mean"]
    out["synthetic: histogram W1 to target"] = metrics["histogram_distance_to_real_target"]["synthetic"][
        "wasserstein_grey_levels"]
    return out


def table(rows: list[dict]) -> str:
    """Markdown: per measure, the fp32 seeds' mean and range, the bf16 mean, and the verdict."""
    measures = [k for k in rows[0] if k not in ("precision", "seed")]
    by = {p: [r for r in rows if r["precision"] == p] for p in PRECISIONS}
    seeds = ", ".join(str(r["seed"]) for r in by["fp32"])
    lines = [f"CycleGAN CPU profile, seeds {seeds}; losses: mean over the last {LAST_SHARE:.0%} of logged "
             "iterations; synthesis: mean over the synthetic images.", ""]
    rows = []
    for m in measures:
        fp32, bf16 = [r[m] for r in by["fp32"]], [r[m] for r in by["bf16"]]
        inside = "—" if m == "s/iter" else ("yes" if min(fp32) <= statistics.fmean(bf16) <= max(fp32) else "**no**")
        rows.append([m, ", ".join(f"{v:.4g}" for v in fp32),
                     f"{statistics.fmean(fp32):.4g} [{min(fp32):.4g}, {max(fp32):.4g}]",
                     ", ".join(f"{v:.4g}" for v in bf16), f"{statistics.fmean(bf16):.4g}", inside])
    lines += markdown_table(["measure", "fp32 per seed", "fp32 mean [min, max]", "bf16 per seed", "bf16 mean",
                             "within fp32 spread"], rows)
    return "\n".join(lines) + "\n"
