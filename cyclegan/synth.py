"""Synthesis: translate N real training images with one of a run's generators (A → B with G_A, the
default, or B → A with G_B), with a manifest that records each image's parent (its path, id,
label and source), the direction, the checkpoint, the run and the seed, and a report.

A run of the ``lungs`` region translates each parent's lung view and pastes it back into the parent
with a feathered edge (:func:`composite`): outside the dilated lungs a synthetic image is its parent,
pixel for pixel. Parents without plausible lungs are skipped, named in the report, and replaced by
the next ones drawn.

The images translated are by default the source domain's own training images; ``images`` chooses
others (a filter as in :mod:`.domains`, over the training split only: a GAN never sees, and never
translates, a validation or test image). A synthetic image's label is its parent's, unless the run
is a label translation (normal → covid), where it takes the target domain's label.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid
from tqdm import tqdm

from cxrdata import CXRDataset, Manifest, Record, manifest_path
from cxrdata.lungs import default_segmenter, feathered, from_lungs_view, lung_masks, lung_problem, lungs_view
from cxrdata.lungs.cache import fitted_masks
from cxrdata.lungs.regions import as_uint8
from cxrdata.manifest import sha256_of
from runkit.checkpoint import load
from runkit.device import autocast, pick_device
from runkit.rundir import current_names, read_json, staged_folder, write_json

from .config import GANConfig
from .data import to_uint8, to_unit_range
from .domains import DomainError, is_label_translation, parse_filter, select_domains, target_label
from .model import build_generator, load_network
from .realism.features import DEFAULT_NETWORK, load_feature_network
from .realism.assessment import (GRID_PAIRS, imagenet_assessment, imagenet_lines, realism_lines,
                                 save_pairs_figure, synthesis_metrics)
from .train import CHECKPOINT

SYNTH_ROOT = Path("data") / "synthetic"
EXTRA_COLUMNS = ("parent_path", "parent_image_id", "parent_label", "parent_source", "direction",
                 "checkpoint_sha256", "gan_run", "seed", "region", "blend_mask")
BATCH = 8
DIRECTIONS = {"a2b": ("G_A", "domain_a", "domain_b"), "b2a": ("G_B", "domain_b", "domain_a")}


def default_out_dir(run_dir: Path | str) -> Path:
    return SYNTH_ROOT / Path(run_dir).resolve().name


def load_generator(run_dir: Path | str, device: torch.device,
                   direction: str = "a2b") -> tuple[torch.nn.Module, GANConfig, Path]:
    """The generator of ``direction`` (``a2b``: G_A; ``b2a``: G_B) of the run's checkpoint, its
    config and the checkpoint path."""
    if direction not in DIRECTIONS:
        raise ValueError(f"--direction {direction}: choose one of {', '.join(DIRECTIONS)}")
    net = DIRECTIONS[direction][0]
    checkpoint = Path(run_dir) / CHECKPOINT
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint; train first (cxr gan train) or pass "
                                "the right --run")
    state = load(checkpoint)
    if "G_A" not in state or "config" not in state:
        raise ValueError(f"{checkpoint}: not a CycleGAN checkpoint of this project (no G_A or config)")
    try:
        config = GANConfig.from_dict(state["config"])
    except ValueError as exc:
        raise ValueError(f"{checkpoint}: its config: {exc}") from None
    generator = build_generator(config)
    load_network(generator, state[net], net, checkpoint)
    return generator.to(device).eval(), config, checkpoint


def choose_parents(candidates: Manifest, n: int, seed: int, unusable: dict[int, str] | None = None
                   ) -> tuple[list[int], list[str]]:
    """``n`` distinct indices into ``candidates``, drawn with ``seed``, passing over those in
    ``unusable`` (index → why); returns them and one line per image passed over."""
    if n <= 0:
        raise ValueError(f"--n must be positive, got {n}")
    unusable = unusable or {}
    usable = len(candidates) - len(unusable)
    if n > usable:
        raise ValueError(f"--n {n} exceeds the {usable} training images to translate in {candidates.name}"
                         + (f" ({len(unusable)} more have no plausible lungs)" if unusable else ""))
    chosen, skipped = [], []
    for index in torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed)).tolist():
        if len(chosen) == n:
            break
        if index in unusable:
            skipped.append(f"{candidates[index].path}: {unusable[index]}")
        else:
            chosen.append(index)
    return chosen, skipped


def implausible_lungs(pool: Manifest, progress: bool = True) -> dict[int, str]:
    """The images of ``pool`` whose predicted lungs are implausible, with the reason."""
    problems = (lung_problem(mask) for mask in lung_masks(pool, default_segmenter(), progress))
    return {i: problem for i, problem in enumerate(problems) if problem}


def candidates(manifest: Manifest, config: GANConfig, direction: str, images: str | None) -> Manifest:
    """The training images a synthesis may translate: ``images`` (a filter) or the source domain's."""
    if images is None:
        return select_domains(manifest, config.domain_a, config.domain_b, config.labels)[direction != "a2b"]
    chosen = parse_filter(images, "--images")
    kept = Manifest([r for r in manifest.select(split="train") if chosen.keeps(r)],
                    name=f"{manifest.name}[train/{images}]")
    if not len(kept):
        raise DomainError(f"--images {images!r}: selects no training images of {manifest.name}")
    return kept


@torch.no_grad()
def composite(generator: torch.nn.Module, parents: np.ndarray, masks: np.ndarray, device: torch.device,
              progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The lungs region's synthesis: each uint8 parent's lung view (its bool ``masks``, at its size)
    translated, confined to the lungs, put back in the parent's frame and blended in with
    :func:`cxrdata.lungs.feathered` weights. Returns the uint8 images, equal to their parents
    wherever the weight is 0 (outside the dilated lungs), and the weights."""
    images = torch.from_numpy(parents).float().div(255).unsqueeze(1)
    lungs = torch.from_numpy(masks).float().unsqueeze(1)
    view, kept = lungs_view(images, lungs)
    translated = torch.from_numpy(translate(generator, as_uint8(view.squeeze(1)), device, progress)).float().div(255)
    # normalised back-warp: the black outside the view's lungs does not bleed into their edge
    back = from_lungs_view(translated.unsqueeze(1) * kept, lungs)
    cover = from_lungs_view(kept, lungs)
    back = torch.where(cover > 0, back / cover.clamp_min(1e-6), images)
    weights = feathered(lungs)
    blended = as_uint8((images * (1 - weights) + back * weights).squeeze(1))
    return np.where(weights.squeeze(1).numpy() == 0, parents, blended), weights.squeeze(1).numpy()


@torch.no_grad()
def translate(generator: torch.nn.Module, images: np.ndarray, device: torch.device,
              progress: bool = True) -> np.ndarray:
    """uint8 ``(N, S, S)`` → uint8 ``(N, S, S)`` through ``generator``, in batches."""
    out = []
    for start in tqdm(range(0, len(images), BATCH), disable=not progress, desc="synthesising", unit="batch"):
        batch = to_unit_range(torch.from_numpy(images[start:start + BATCH]).unsqueeze(1)).to(device)
        with autocast(device):
            out.append(to_uint8(generator(batch)).squeeze(1).cpu().numpy())
    return np.concatenate(out)


def synthesize(run_dir: Path | str, n: int, *, seed: int = 0, out: Path | str | None = None,
               overwrite: bool = False, device: str = "auto", direction: str = "a2b", images: str | None = None,
               region: str | None = None, progress: bool = True) -> Path:
    """Write ``n`` synthetic PNGs to ``<out>/<label>/``, ``<out>/manifest.csv`` (read it with
    ``Manifest.read(csv, root=csv.parent)``), ``report.json`` and ``report.png``; returns ``out``
    (default ``data/synthetic/<run name>``). ``region``, when given, must be the run's. Nothing is
    left behind on error."""
    out = Path(out or default_out_dir(run_dir))
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a synthesis; pass --overwrite to replace it or choose --out")
    torch_device = pick_device(device)
    generator, config, checkpoint = load_generator(run_dir, torch_device, direction)
    if region is not None and region != config.region:
        raise ValueError(f"--region {region}: {run_dir} was trained on the {config.region} region and synthesises "
                         f"only in it; train a --region {region} run for that")
    lungs = config.region == "lungs"
    manifest = Manifest.read(manifest_path(config.dataset))
    pool = candidates(manifest, config, direction, images)
    chosen, skipped = choose_parents(pool, n, seed, implausible_lungs(pool, progress) if lungs else None)
    for line in skipped:
        print(f"skipped, no plausible lungs: {line}")
    parents = Manifest([pool[i] for i in chosen], name=f"{manifest.name}-parents")
    parent_images = CXRDataset(parents, config.image_size, progress=progress).images
    if lungs:
        masks = fitted_masks(parents, config.image_size, default_segmenter(), progress)
        synthetic, weights = composite(generator, parent_images, masks, torch_device, progress)
    else:
        synthetic, weights = translate(generator, parent_images, torch_device, progress), None
    _, source_domain, target_domain = DIRECTIONS[direction]
    target_filter = getattr(config, target_domain)
    target = select_domains(manifest, config.domain_a, config.domain_b, config.labels)[direction == "a2b"]
    target_images = CXRDataset(target, config.image_size, progress=progress).images
    label_translation = is_label_translation(config.domain_a, config.domain_b, config.labels)

    with staged_folder(out) as staging:
        provenance = {"direction": f"{direction}: {getattr(config, source_domain)} → {target_filter}",
                      "checkpoint_sha256": sha256_of(checkpoint), "gan_run": Path(run_dir).resolve().name,
                      "seed": str(seed), "region": config.region}
        records = [_write_image(staging, out, parent, image,
                                target_label(parent.label, target_filter, label_translation), provenance,
                                None if weights is None else weights[i])
                   for i, (parent, image) in enumerate(zip(parents, synthetic))]
        Manifest(records, name=out.name).write(staging / "manifest.csv", extra_columns=EXTRA_COLUMNS)
        names = [r.extra["parent_image_id"] for r in records]
        save_pairs_figure(parent_images, synthetic, names, staging / "report.png")
        log_grid(staging, parent_images, synthetic, config.region)
        imagenet = imagenet_assessment(parents, Manifest(records, name=out.name), target,
                                       {"parents": parent_images, "synthetic": synthetic, "target": target_images},
                                       weights, progress)
        write_report(staging, {
            **provenance, "n": n, "seed": seed, "image_size": config.image_size, "checkpoint": str(checkpoint),
            "dataset": config.dataset, "translated": images or getattr(config, source_domain),
            "target": {"filter": target_filter, "labels": config.labels},
            "labels": dict(Counter(r.label for r in records)), "real_target_training_images": len(target),
            "skipped_no_plausible_lungs": skipped,
            "metrics": synthesis_metrics(parent_images, synthetic, target_images), "imagenet": imagenet}, out.name)
    return out


def log_grid(folder: Path, parents: np.ndarray, synthetic: np.ndarray, region: str) -> None:
    """Parents above their synthetic images, as a TensorBoard image in ``folder`` (`make tensorboard`)."""
    count = min(GRID_PAIRS, len(parents))
    tiles = torch.from_numpy(np.concatenate([parents[:count], synthetic[:count]])).unsqueeze(1)
    with SummaryWriter(str(folder)) as writer:
        writer.add_image(f"synthesis ({region} region)/parents (top) | synthetic (bottom)",
                         make_grid(tiles, nrow=count, padding=2, pad_value=255), 0)


class SynthesisFolderError(ValueError):
    """A folder that is not a synthesis this code can measure; the message names it."""


def write_report(folder: Path, report: dict, title: str) -> None:
    """``report.json`` and its reader's version, ``report.md``, into ``folder``."""
    write_json(folder / "report.json", report)
    lines = [f"# Synthesis {title}", "",
             f"{report['n']} images, {report['direction']}, from GAN run `{report['gan_run']}` (checkpoint sha256 "
             f"{report['checkpoint_sha256'][:12]}…), parents drawn with seed {report['seed']} from "
             f"{report['translated']} in {report['dataset']}'s training split, at {report['image_size']} px. Labels "
             f"written: {', '.join(f'{k} {v}' for k, v in report['labels'].items())}.", "",
             *_region_lines(report),
             "## Realism", "", *realism_lines(report["metrics"]),
             *(imagenet_lines(report["imagenet"]) if "imagenet" in report else []),
             "![parents (top) and their synthetic images (bottom)](report.png)", "",
             "Every measurement, with the pixel distances and histograms, is in `report.json`.", ""]
    (folder / "report.md").write_text("\n".join(lines), encoding="utf-8")


def _region_lines(report: dict) -> list[str]:
    if report.get("region", "full") != "lungs":
        return []
    skipped = report.get("skipped_no_plausible_lungs", [])
    return ["Region **lungs**: each parent's lungs were translated and pasted back with a feathered edge; outside "
            "the dilated lungs every synthetic image is its parent, pixel for pixel (the blending masks are in "
            f"`masks/`). Parents passed over for implausible lungs: {len(skipped)}"
            + (" (" + "; ".join(skipped) + ")." if skipped else "."), ""]


def remeasure(folder: Path | str, network: Path | str = DEFAULT_NETWORK, progress: bool = True) -> dict:
    """Measure an existing synthesis ``folder`` again (e.g. on another feature network); rewrite
    its ``report.json`` and ``report.md`` and return the metrics."""
    folder = Path(folder)
    listing, report_file = folder / "manifest.csv", folder / "report.json"
    for path in (listing, report_file):
        if not path.is_file():
            raise SynthesisFolderError(f"{folder}: no {path.name}; not a synthesis folder (make one with "
                                       "cxr gan synth)")
    synthetic_rows = Manifest.read(listing, root=folder)
    if not len(synthetic_rows):
        raise SynthesisFolderError(f"{folder}: no synthetic images (manifest.csv has no rows)")
    load_feature_network(network)  # a missing or changed network is said before any image is read
    report = current_names(read_json(report_file))
    if "target" not in report:  # made before report.json named it
        report["target"] = _target_from_run(folder, report)
    manifest = Manifest.read(manifest_path(report["dataset"]))
    by_path = {r.path: r for r in manifest}
    missing = [r.extra["parent_path"] for r in synthetic_rows if r.extra.get("parent_path") not in by_path]
    if missing:
        raise SynthesisFolderError(f"{folder}: {len(missing)} parent(s) not in {report['dataset']} (e.g. {missing[0]})")
    parents = Manifest([by_path[r.extra["parent_path"]] for r in synthetic_rows], name="parents")
    keep = parse_filter(report["target"]["filter"], "target domain", report["target"]["labels"])
    target = Manifest([r for r in manifest.select(split="train") if keep.keeps(r)], name="target")
    size = report["image_size"]
    images = {name: CXRDataset(rows, size, progress=progress).images
              for name, rows in (("parents", parents), ("synthetic", synthetic_rows), ("target", target))}
    report["metrics"] = synthesis_metrics(images["parents"], images["synthetic"], images["target"], network)
    blend = None
    if report.get("region") == "lungs":
        blend = np.stack([np.asarray(Image.open(folder / r.extra["blend_mask"]), dtype=np.float32) / 255
                          for r in synthetic_rows])
    report["imagenet"] = imagenet_assessment(parents, synthetic_rows, target, images, blend, progress)
    if not list(folder.glob("events.out.tfevents.*")):  # made before syntheses logged their grid
        log_grid(folder, images["parents"], images["synthetic"], report.get("region", "full"))
    write_report(folder, report, folder.name)
    return report["metrics"]


def _target_from_run(folder: Path, report: dict) -> dict:
    """The target domain of a synthesis made before report.json named it, from its GAN run's config."""
    config_file = Path(report.get("checkpoint", "")).parent / "config.json"
    if not config_file.is_file():
        raise SynthesisFolderError(f"{folder}: report.json names no target domain and its GAN run's config "
                                   f"({config_file}) is gone; synthesise it again (cxr gan synth --overwrite)")
    config = read_json(config_file)
    direction = report["direction"].split(":")[0]
    return {"filter": config[DIRECTIONS[direction][2]], "labels": config.get("labels", "")}


def _write_image(staging: Path, out: Path, parent: Record, image: np.ndarray, label: str,
                 provenance: dict, weights: np.ndarray | None = None) -> Record:
    """One synthetic PNG and its record; with ``weights`` (the lungs region) also the blending
    mask it was pasted in with, as ``masks/<parent>-blend.png`` (0-255)."""
    parent_id = parent.extra.get("image_id") or Path(parent.path).stem
    relative = f"{label}/{parent_id}-synthetic.png"
    (staging / label).mkdir(exist_ok=True)
    Image.fromarray(image).save(staging / relative)
    blend = ""
    if weights is not None:
        blend = f"masks/{parent_id}-blend.png"
        (staging / "masks").mkdir(exist_ok=True)
        Image.fromarray(np.round(weights * 255).astype(np.uint8)).save(staging / blend)
    return Record(path=relative, label=label, split="train", patient_id=parent.patient_id,
                  source="synthetic", sha256=sha256_of(staging / relative), file=out / relative,
                  extra={"parent_path": parent.path, "parent_image_id": parent_id, "parent_label": parent.label,
                         "parent_source": parent.source, **provenance, "blend_mask": blend})
