"""Measure CycleGAN settings against the realism numbers: each variant over GAN seeds, one
synthesis each, tabulated with the real floor.

For every variant (a set of GAN settings on top of a profile) and seed, a normal → covid CycleGAN
is trained on the training split and ``n`` synthetic images are made from it with one fixed
parent draw, so that variants differ only in the GAN. Measured per variant, as mean ± sd over
seeds: the Fréchet distance, precision and recall on the fixed CXR feature network, the
checkerboard score and the training time. Finished runs and syntheses are reused.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cxrdata import CXRDataset, Manifest, manifest_path
from cyclegan.config import from_profile
from cyclegan.realism.assessment import save_rows_figure
from cyclegan.train import train as train_gan
from runkit.rundir import read_json, runs_root, write_json
from runkit.formatting import decimal, markdown_table, mean_sd

from pipelines.experiment.stats import spread
from pipelines.experiment.steps import ensure, ensure_synthesis

RUNS_ROOT = runs_root("gan-variants")
VARIANTS = {  # name: CycleGAN settings on top of the profile
    "transpose-800": {"upsample": "transpose", "iterations": 800},  # the cpu profile before issue 28
    "resize-800": {"upsample": "resize", "iterations": 800},
    "resize-1200": {"upsample": "resize", "iterations": 1200},  # LR decay over the last half, as always
}
SYNTH_SEED = 0
FLOOR = "real target, other half (floor)"


def run_gan_variants(variants: list[str], seeds: tuple[int, ...], out_dir: Path, *, profile: str = "cpu",
                     dataset: str = "cxr3", n: int = 100, overwrite: bool = False, log=print) -> dict:
    """Train and synthesise every variant × seed; write ``results.json`` and ``table.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant in tqdm(variants, desc="GAN variants", unit="variant"):
        reports = []
        for seed in seeds:
            config = from_profile(profile, dataset=dataset, seed=seed, **VARIANTS[variant])
            run_dir = out_dir / f"{variant}-seed{seed}"
            _, how = ensure(run_dir, config.to_dict(), lambda d, **kw: _timed_train(config, d, **kw),
                            overwrite=overwrite)
            log(f"GAN {run_dir}: {how}")
            reports.append(_synthesis(run_dir, n, log))
        results[variant] = summarise(reports, [read_json(out_dir / f"{variant}-seed{s}" / "timing.json")
                                               for s in seeds])
    write_json(out_dir / "results.json", {"profile": profile, "dataset": dataset, "n": n, "seeds": list(seeds),
                                          "variants": {v: VARIANTS[v] for v in variants}, "results": results})
    (out_dir / "table.md").write_text(table(results), encoding="utf-8")
    save_grid(out_dir, variants, seeds[0], dataset, out_dir / "grid.png")
    return results


def save_grid(out_dir: Path, variants: list[str], seed: int, dataset: str, path: Path, count: int = 6) -> None:
    """The same ``count`` parents (top row) and each variant's synthetic images of them (one row
    per variant, GAN seed ``seed``), each beside a crop of its centre, where texture shows."""
    rows, parents = {}, None
    for variant in variants:
        folder = out_dir / f"{variant}-seed{seed}" / "synthetic"
        synthetic = Manifest.read(folder / "manifest.csv", root=folder).records[:count]
        parents = parents or [r.extra["parent_path"] for r in synthetic]
        rows[variant] = [np.asarray(Image.open(r.file)) for r in synthetic]
    by_path = {r.path: r for r in Manifest.read(manifest_path(dataset))}
    size = rows[variants[0]][0].shape[0]
    real = CXRDataset(Manifest([by_path[p] for p in parents], name="parents"), size, progress=False).images
    save_rows_figure({"parents": list(real), **rows}, path)


def _timed_train(config, run_dir: Path, **kwargs) -> Path:
    started = time.perf_counter()
    train_gan(config, run_dir, progress=False, **kwargs)
    write_json(run_dir / "timing.json", {"seconds": time.perf_counter() - started,
                                        "resumed": bool(kwargs.get("resume"))})
    return run_dir


def _synthesis(run_dir: Path, n: int, log) -> dict:
    out = run_dir / "synthetic"
    log(f"synthesis {out}: {ensure_synthesis(run_dir, out, n, SYNTH_SEED, progress=False)}")
    return read_json(out / "report.json")


def summarise(reports: list[dict], timings: list[dict]) -> dict:
    """Mean ± sd over seeds of each realism number (and the floor, and the training time)."""
    def over(rows: str, read) -> dict | None:
        try:
            return spread([float(read(r["metrics"], rows)) for r in reports])
        except KeyError:  # a measure that said it had too few images
            return None

    fd = lambda m, rows: m["realism"]["frechet_distance"][rows]  # noqa: E731
    pr = lambda key: lambda m, rows: m["realism"]["precision_recall"][rows][key]  # noqa: E731
    return {
        "frechet_distance": over("synthetic", fd), "frechet_floor": over(FLOOR, fd),
        "frechet_parents": over("parents (baseline)", fd),
        "precision": over("synthetic", pr("precision")), "recall": over("synthetic", pr("recall")),
        "checkerboard": over("synthetic", lambda m, _: m["checkerboard"]["synthetic"]["mean"]),
        "checkerboard_floor": over("real target (floor)", lambda m, rows: m["checkerboard"][rows]["mean"]),
        "training_minutes": spread([t["seconds"] / 60 for t in timings]),
        "resumed": any(t["resumed"] for t in timings),
    }


def table(results: dict) -> str:
    def ms(s: dict | None, digits: int = 2) -> str:
        return mean_sd(s, scale=1, digits=digits)

    def mean(s: dict | None) -> str:
        return decimal(s and s["mean"], 2)

    rows = [[name, f"{ms(r['frechet_distance'])} ({mean(r['frechet_floor'])}; {mean(r['frechet_parents'])})",
             ms(r["precision"]), ms(r["recall"]), f"{ms(r['checkerboard'])} ({mean(r['checkerboard_floor'])})",
             f"{ms(r['training_minutes'], 1)}{' (resumed)' if r['resumed'] else ''}"] for name, r in results.items()]
    return "\n".join(markdown_table(["variant", "Fréchet distance ↓ (floor; parents)", "precision ↑", "recall ↑",
                                     "checkerboard ↓ (floor)", "training min"], rows)) + "\n"
