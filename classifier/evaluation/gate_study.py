"""Measure the input quality gate: how often it flags real held-out chest X-rays (false flags) and
how often it catches images that are not chest X-rays (detections).

Non-CXR images: scikit-image's bundled sample photos and drawings, documents and screenshots
rendered here, flat images and noise. Every image goes through the real reading path
(:func:`cxrdata.read_grayscale` on a PNG file), as an upload would.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxrdata import Manifest, manifest_path, read_grayscale
from cxrdata.images import ImageReadError, stretch_to_uint8
from runkit import rundir
from runkit.formatting import markdown_table, pct

from classifier.evaluation.crosssource import corpus_manifest
from runkit.intervals import wilson_interval
from classifier.inference.input_gate import QualityGate, gate_for

SKIMAGE_SAMPLES = ("astronaut", "binary_blobs", "brick", "camera", "cell", "checkerboard", "chelsea", "clock",
                   "coffee", "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
                   "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket",
                   "shepp_logan_phantom", "text")
WORDS = ("patient", "report", "chest", "image", "result", "the", "of", "and", "normal", "value", "date",
         "clinic", "total", "page", "section", "data", "model", "file", "view", "upload", "settings")
GATE_ROOT = rundir.runs_root("quality-gate")


def skimage_samples() -> list[tuple[str, Image.Image]]:
    """scikit-image's bundled sample images (photos, drawings, micrographs, a CT phantom)."""
    try:
        from skimage import data
    except ImportError:
        raise ImportError("measuring the quality gate needs scikit-image's sample images: "
                          "pip install scikit-image (included in the test extra)") from None
    samples = []
    for name in SKIMAGE_SAMPLES:
        array = np.asarray(getattr(data, name)())
        if array.dtype != np.uint8:  # boolean masks and float images
            array = stretch_to_uint8(array)
        samples.append((f"skimage.{name}", Image.fromarray(array)))
    return samples


def _text_lines(draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[int, int, int, int],
                size: int, colour) -> None:
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = box
    y = top
    while y + size < bottom:
        words = rng.choice(WORDS, size=int(rng.integers(3, 12)))
        draw.text((left, y), " ".join(words).capitalize(), fill=colour, font=font)
        y += int(size * rng.uniform(1.3, 2.2))


def documents(n: int, seed: int) -> list[tuple[str, Image.Image]]:
    """Text pages: dark text of random sizes on a light page, some with a title and a rule."""
    rng = np.random.default_rng(seed)
    pages = []
    for i in range(n):
        width, height = int(rng.integers(400, 900)), int(rng.integers(500, 1100))
        page = Image.new("L", (width, height), int(rng.integers(225, 256)))
        draw = ImageDraw.Draw(page)
        top = 30
        if rng.random() < 0.6:
            _text_lines(draw, rng, (30, 20, width - 30, 80), 32, 0)
            draw.line((30, 85, width - 30, 85), fill=60, width=2)
            top = 100
        _text_lines(draw, rng, (30, top, width - 30, height - 30), int(rng.integers(11, 20)), int(rng.integers(0, 60)))
        pages.append((f"document-{i}", page))
    return pages


def screenshots(n: int, seed: int) -> list[tuple[str, Image.Image]]:
    """Application windows: a title bar, panels, buttons and text in colour."""
    rng = np.random.default_rng(seed)
    shots = []
    for i in range(n):
        width, height = int(rng.integers(640, 1280)), int(rng.integers(400, 800))
        shot = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(200, 256, 3)))
        draw = ImageDraw.Draw(shot)
        draw.rectangle((0, 0, width, 32), fill=tuple(int(v) for v in rng.integers(20, 120, 3)))
        _text_lines(draw, rng, (10, 6, width // 2, 30), 16, (255, 255, 255))
        panel = int(rng.integers(150, 300))
        draw.rectangle((0, 32, panel, height), fill=tuple(int(v) for v in rng.integers(150, 230, 3)))
        _text_lines(draw, rng, (12, 45, panel - 10, height - 10), 14, (30, 30, 30))
        for _ in range(int(rng.integers(2, 6))):
            x, y = int(rng.integers(panel + 20, width - 120)), int(rng.integers(50, height - 40))
            draw.rounded_rectangle((x, y, x + 100, y + 30), 6, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        _text_lines(draw, rng, (panel + 20, 50, width - 20, height - 20), 15, (20, 20, 20))
        shots.append((f"screenshot-{i}", shot))
    return shots


def flat_images() -> list[tuple[str, Image.Image]]:
    """Uniform images at 9 grey levels, and the same with one grey level of noise."""
    rng = np.random.default_rng(0)
    images = []
    for level in range(0, 256, 32):
        images.append((f"flat-{level}", Image.new("L", (512, 512), level)))
        noisy = np.clip(level + rng.normal(0, 1, (512, 512)), 0, 255).astype(np.uint8)
        images.append((f"flat-{level}-noisy", Image.fromarray(noisy)))
    return images


def noise_images(n: int, seed: int) -> list[tuple[str, Image.Image]]:
    """Uniform, Gaussian, salt-and-pepper and smoothed (blobby) noise."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        kind = ("uniform", "gaussian", "salt-pepper", "smooth")[i % 4]
        if kind == "uniform":
            array = rng.integers(0, 256, (512, 512))
        elif kind == "gaussian":
            array = np.clip(rng.normal(128, 50, (512, 512)), 0, 255)
        elif kind == "salt-pepper":
            array = (rng.random((512, 512)) < 0.5) * 255
        else:
            small = Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8))
            array = np.asarray(small.resize((512, 512), Image.Resampling.BICUBIC))
        images.append((f"noise-{kind}-{i}", Image.fromarray(np.asarray(array, dtype=np.uint8))))
    return images


def non_cxr_sets(seed: int = 0) -> dict[str, list[tuple[str, Image.Image]]]:
    """Every category of non-CXR images the gate is measured on."""
    return {"photos and drawings (scikit-image)": skimage_samples(), "documents": documents(20, seed),
            "screenshots": screenshots(20, seed + 1), "flat": flat_images(), "noise": noise_images(20, seed + 2)}


def strips(manifest: Manifest, n: int) -> list[tuple[str, Image.Image]]:
    """Real chest X-rays squeezed into 2000 × 100 and 100 × 2000 strips: no longer X-ray-shaped,
    though a centre crop of one still looks like lung."""
    images = []
    for record in manifest.records[:: max(1, len(manifest) // n)][:n]:
        gray = Image.fromarray(read_grayscale(record.file))
        images += [(f"{record.path} {w}×{h}", gray.resize((w, h), Image.Resampling.LANCZOS))
                   for w, h in ((2000, 100), (100, 2000))]
    return images


def _verdicts(gate: QualityGate, images: list[tuple[str, Image.Image]]) -> list[tuple[str, bool]]:
    """``(name, flagged)`` for each image, read back from a PNG file as an upload is."""
    flagged = []
    with tempfile.TemporaryDirectory() as folder:
        for i, (name, image) in enumerate(images):
            path = Path(folder) / f"{i}.png"
            image.save(path)
            flagged.append((name, not gate.check(read_grayscale(path)).ok))
    return flagged


def _rate(flags: list[bool]) -> dict:
    k, n = int(sum(flags)), len(flags)
    low, high = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "ci95": [low, high]}


def measure(dataset: str = "cxr3", out_dir: Path | None = None, progress: bool = True) -> dict:
    """False-flag rates on real held-out CXRs and detection rates on non-CXR images; writes
    ``metrics.json`` and ``report.md`` to ``out_dir`` (default ``runs/quality-gate/<dataset>``)."""
    gate = gate_for(dataset, progress)
    manifest = Manifest.read(manifest_path(dataset))
    held_out = {f"{dataset} test split": manifest.select(split="test")}
    corpus = corpus_manifest()
    if corpus is not None:
        inside = {r.sha256 for r in manifest}
        held_out["corpus images outside the dataset (other sources)"] = Manifest(
            [r for r in corpus if r.sha256 not in inside], name="outside")
    false_flags, examples = {}, {}
    for name, images in held_out.items():
        flags = []
        for record in images:
            try:
                flags.append(not gate.check(read_grayscale(record.file)).ok)
            except ImageReadError:
                continue
        false_flags[name] = _rate(flags)
        examples[name] = [r.path for r, f in zip(images, flags) if f][:10]
    detections, missed, every = {}, {}, []
    squeezed = {f"{dataset} test images squeezed into strips": strips(held_out[f"{dataset} test split"], 10)}
    for category, images in {**non_cxr_sets(), **squeezed}.items():
        verdicts = _verdicts(gate, images)
        detections[category] = _rate([f for _, f in verdicts])
        missed[category] = [name for name, f in verdicts if not f]
        every += [f for _, f in verdicts]
    result = {"dataset": dataset, "threshold": gate.threshold, "false_flags": false_flags,
              "false_flag_examples": examples, "detections": detections, "detection_all": _rate(every),
              "missed": missed}
    out_dir = Path(out_dir) if out_dir else GATE_ROOT / Path(dataset).stem
    out_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_json(out_dir / "metrics.json", result)
    (out_dir / "report.md").write_text(markdown(result), encoding="utf-8")
    return result


def markdown(result: dict) -> str:
    def row(name: str, r: dict) -> list:
        return [name, f"{r['k']}/{r['n']}", f"{pct(r['rate'])} % [{pct(r['ci95'][0])}, {pct(r['ci95'][1])}]"]

    lines = [f"# Input quality gate on {result['dataset']}", "",
             f"Threshold {result['threshold']:.3f} (the 99th percentile of the validation split's scores).", ""]
    lines += markdown_table(["real held-out chest X-rays", "flagged", "false-flag rate [95 % CI]"],
                            [row(name, r) for name, r in result["false_flags"].items()])
    lines += [""] + markdown_table(["non-CXR images", "flagged", "detection rate [95 % CI]"],
                                   [row(name, r) for name, r in result["detections"].items()]
                                   + [row("**all non-CXR images**", result["detection_all"])]) + [""]
    for category, names in result["missed"].items():
        if names:
            lines.append(f"- missed ({category}): {', '.join(names)}")
    return "\n".join(lines) + "\n"
