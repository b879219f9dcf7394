"""The counterfactual set of v3: every class in every source's style, labels kept.

A source-translation CycleGAN learns style, not disease, from the non-covid training images only
(A: NIH, B: the other sources, labels normal and pneumonia). It then translates NIH normal and
pneumonia training images into the other sources' style (A → B) and covid training images,
which are all non-NIH, into NIH style (B → A). Each synthetic image keeps its parent's label; the
three sets go into one folder with one ``manifest.csv`` that ``--aug v3`` reads.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from cxrdata import Manifest, manifest_path
from cyclegan.config import from_profile
from cyclegan.domains import parse_filter
from cyclegan.synth import EXTRA_COLUMNS, synthesize
from cyclegan.train import train as train_gan
from cxrdata.manifest import sha256_of
from runkit.rundir import read_json, staged_folder, write_json

from pipelines.experiment.steps import ensure

HOSPITAL = "nih"  # domain A's source; domain B: every other source of the training split
NON_COVID = "normal,pneumonia"
# (folder, direction, images translated): NIH non-covid into the others' style, covid into NIH style
PARTS = (("nih-normal-to-other", "a2b", "source=nih;label=normal"),
         ("nih-pneumonia-to-other", "a2b", "source=nih;label=pneumonia"),
         ("covid-to-nih", "b2a", "label=covid"))
PER_CLASS = 150  # images translated per part (capped at what the training split has)


def make_counterfactual(dataset: str, out: Path, *, gan_run: Path, gan_profile: str = "cpu", gan: dict | None = None,
                        per_class: int = PER_CLASS, seed: int = 0, overwrite: bool = False,
                        progress: bool = True, log=print) -> Path:
    """Train (or reuse) the source-translation GAN in ``gan_run`` and write the counterfactual set
    to ``out`` (``out/manifest.csv``); returns ``out``."""
    train = Manifest.read(manifest_path(dataset)).select(split="train")
    domains = source_domains(train)
    config = from_profile(gan_profile, dataset=dataset, **domains, **(gan or {}))
    _, how = ensure(gan_run, config.to_dict(), lambda d, **kw: train_gan(config, d, progress=progress, **kw),
                    overwrite=overwrite)
    log(f"source-translation CycleGAN {gan_run}: {how}")
    made_with = {"gan_checkpoint_sha256": sha256_of(gan_run / "checkpoint.pt"), "dataset": dataset,
                 "per_class": per_class, "seed": seed}
    if (out / "manifest.csv").is_file() and not overwrite:
        if {k: read_json(out / "report.json").get(k) for k in made_with} == made_with:
            log(f"counterfactual set {out}: reused")
            return out
        raise FileExistsError(f"{out} already holds a counterfactual set made otherwise; pass --overwrite to "
                              "replace it")
    records, counts = [], {}
    with staged_folder(out) as staging:
        for folder, direction, images in PARTS:
            part = synthesize(gan_run, _available(train, images, per_class), seed=seed, out=staging / folder,
                              direction=direction, images=images, progress=progress)
            made = Manifest.read(part / "manifest.csv", root=part)
            counts[folder] = len(made)
            records += [dataclasses.replace(r, path=f"{folder}/{r.path}") for r in made]
        write_json(staging / "report.json", {"gan_run": str(gan_run), **made_with, "parts": counts,
                                             "domains": domains})
        Manifest(records, name=out.name).write(staging / "manifest.csv", extra_columns=EXTRA_COLUMNS)
    log(f"counterfactual set {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return out


def source_domains(train: Manifest) -> dict[str, str]:
    """The source-translation GAN's domains on a training split: NIH vs every other source (the
    commonest first), non-covid images only (for cxr3: source=nih vs source=ieee8023,figure1)."""
    counts = Counter(r.source for r in train)
    others = sorted((s for s in counts if s != HOSPITAL), key=lambda s: (-counts[s], s))
    return {"domain_a": f"source={HOSPITAL}", "domain_b": f"source={','.join(others)}", "labels": NON_COVID}


def _available(train: Manifest, images: str, wanted: int) -> int:
    """``wanted``, or fewer where the training split has fewer images of that filter."""
    chosen = parse_filter(images, "--images")
    have = sum(chosen.keeps(r) for r in train)
    return min(wanted, have)
