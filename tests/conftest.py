"""Shared fixtures: the real corpus, or where it is absent the small real set in tests/data/, and an
isolated cache.

Without the corpus (a plain clone), every test runs on ``tests/data/cxr`` (121 corpus images shrunk
to 128 px) and tests that need the whole corpus skip, one line each; with ``CXR_REQUIRE_CORPUS=1``
(CI) a missing corpus is an error instead.
"""
from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import pytest

import classifier.evaluation.crosssource as crosssource
from cxrdata.lungs.human import build_mask_manifest
from cxrdata.manifest import Manifest, data_root, manifest_path
from cxrdata.splits import write_manifests
from runkit.machine import describe

from helpers import single_thread

FIXTURES = Path(__file__).resolve().parent / "data"
RAW_SAMPLES = FIXTURES / "raw-samples"
CORPUS_ROOT = data_root()
HAVE_CORPUS = (CORPUS_ROOT / "metadata.csv").is_file()


def pytest_configure(config) -> None:
    """Without the corpus, point every data_root() and manifest name (subprocesses too) at the small
    set and its cxr3 and makris2020 manifests, built by the project's own splitter, and at its lung
    masks and their manifest."""
    if HAVE_CORPUS:
        return
    if os.environ.get("CXR_REQUIRE_CORPUS"):
        raise pytest.UsageError(f"the real corpus is missing at {CORPUS_ROOT} and CXR_REQUIRE_CORPUS is set: "
                                "run `make fetch` or set CXR_DATA")
    manifests = Path(tempfile.mkdtemp(prefix="cxr-test-manifests-"))
    config.cxr_small_manifests = manifests
    write_manifests(FIXTURES / "cxr" / "metadata.csv", manifests)
    os.environ["CXR_DATA"], os.environ["CXR_MANIFESTS"] = str(FIXTURES / "cxr"), str(manifests)
    os.environ["CXR_LUNG_MASKS"] = str(FIXTURES / "lung-masks")
    build_mask_manifest(FIXTURES / "lung-masks" / "lung-masks.csv",
                        Manifest.read(FIXTURES / "cxr" / "metadata.csv", default_split="train"),
                        manifests / "lung-masks.csv")


def pytest_unconfigure(config) -> None:
    """Remove the small set's manifests made at the start of the session."""
    if hasattr(config, "cxr_small_manifests"):
        shutil.rmtree(config.cxr_small_manifests, ignore_errors=True)


def pytest_report_header(config) -> list[str]:
    """Which CPU the suite ran on (float results differ in the last bits between CPUs) and which data."""
    data = (f"data: the corpus at {CORPUS_ROOT}" if HAVE_CORPUS else
            f"data: the small set in {FIXTURES / 'cxr'} (no corpus at {CORPUS_ROOT}: tests needing it skip)")
    return [f"cpu: {describe()}", data]


@pytest.fixture(scope="session")
def onnx_graphs(tmp_path_factory) -> Path:
    """One folder of cached ONNX graphs for the session (named by what made them, so safe to share):
    exporting an architecture's graph takes seconds."""
    return tmp_path_factory.mktemp("onnx-graphs")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch, onnx_graphs):
    """Every test writes its decoded-image cache to a fresh temporary folder (the ONNX graphs shared)."""
    cache = tmp_path_factory.mktemp("cache")
    (cache / "onnx").symlink_to(onnx_graphs, target_is_directory=True)
    monkeypatch.setenv("CXR_CACHE", str(cache))


@pytest.fixture(scope="session")
def small_corpus() -> Manifest | None:
    """Four paediatric normal and four pneumonia images of the real corpus (or None without it)."""
    full = crosssource.corpus_manifest()
    if full is None:
        return None
    paediatric = [r for r in full if r.source == "kaggle-paediatric"]
    kept = [r for r in paediatric if r.label == "normal"][:4] + [r for r in paediatric if r.label == "pneumonia"][:4]
    return Manifest(kept, name="small-corpus")


@pytest.fixture(autouse=True)
def quick_out_of_source(small_corpus, monkeypatch):
    """Training runs in tests check 8 out-of-source images instead of every corpus image outside
    their tiny manifests (about 1,700: minutes per run). Tests of the corpus itself import
    ``corpus_manifest`` directly and still read all of it."""
    monkeypatch.setattr(crosssource, "corpus_manifest", lambda root=None: small_corpus)


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, above all on a 2-core machine shared with other jobs."""
    with single_thread():
        yield


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The whole corpus's root; a test that needs it skips where it is absent."""
    if not HAVE_CORPUS:
        pytest.skip(f"needs the whole corpus (absent at {CORPUS_ROOT}: `make fetch` or CXR_DATA)")
    return CORPUS_ROOT


@pytest.fixture(scope="session")
def cxr3() -> Manifest:
    """The committed cxr3 manifest with the corpus, else the same manifest of the small set."""
    return Manifest.read(manifest_path("cxr3"))


@pytest.fixture(scope="session")
def makris() -> Manifest:
    return Manifest.read(manifest_path("makris2020"))


@pytest.fixture(scope="session")
def tiny_run(cxr3, small_corpus, tmp_path_factory, onnx_graphs) -> tuple[Path, Manifest]:
    """A finished classifier run on 4/2/3 real images per class at 32 px, and its manifest."""
    from classifier.config import make_config
    from classifier.training.train import train_classifier

    folder = tmp_path_factory.mktemp("tiny-run")
    manifest = few(cxr3, "train", 4) + few(cxr3, "val", 2) + few(cxr3, "test", 3)
    manifest.write(folder / "tiny.csv", ["image_id"])
    config = make_config(dataset=str(folder / "tiny.csv"), image_size=32, batch_size=4, epochs=1, seed=3)
    (folder / "cache").mkdir()
    (folder / "cache" / "onnx").symlink_to(onnx_graphs, target_is_directory=True)
    with single_thread(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(crosssource, "corpus_manifest", lambda root=None: small_corpus)
        patch.setenv("CXR_CACHE", str(folder / "cache"))
        run = train_classifier(config, folder / "run", progress=False)
    return run, manifest


def few(manifest: Manifest, split: str, per_class: int) -> Manifest:
    """The first ``per_class`` images of each class in ``split`` (a tiny real subset)."""
    chosen = []
    for label in ("normal", "covid", "pneumonia"):
        chosen += manifest.select(split=split, label=label).records[:per_class]
    return Manifest(chosen, name=f"{manifest.name}-{split}-few")


def png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims ``width``×``height`` pixels, with no pixel data (a bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


@pytest.fixture
def mixed_sources_csv(cxr3, tmp_path) -> Path:
    """Real training images of NIH and ieee8023 normals and pneumonias and ieee8023 covid (3 each),
    with 2 val and 2 test images per class that no GAN may see."""
    records = []
    for label, source in (("normal", "nih"), ("pneumonia", "nih"), ("normal", "ieee8023"),
                          ("pneumonia", "ieee8023"), ("covid", "ieee8023")):
        records += [r for r in cxr3 if (r.split, r.label, r.source) == ("train", label, source)][:3]
    for split in ("val", "test"):
        records += few(cxr3, split, 2).records
    path = tmp_path / "mixed.csv"
    Manifest(records, name="mixed").write(path, extra_columns=("image_id",))
    return path
