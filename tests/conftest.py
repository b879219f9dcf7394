"""Shared fixtures: the real corpus (skips cleanly where it is absent) and an isolated cache."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch

from classifier import crosssource
from cxrdata.manifest import Manifest, data_root, manifest_path
from runkit.machine import describe

RAW_SAMPLES = data_root().parent / "raw-samples"


def pytest_report_header(config) -> str:
    """Which CPU the suite ran on: float results differ in the last bits between CPUs."""
    return f"cpu: {describe()}"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes its decoded-image cache to a fresh temporary folder."""
    monkeypatch.setenv("CXR_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def small_corpus() -> Manifest | None:
    """Four paediatric normal and four pneumonia images of the real corpus (or None without it)."""
    full = crosssource.corpus_manifest()
    if full is None:
        return None
    paediatric = [r for r in full if r.source == "kaggle-paediatric"]
    return Manifest([r for r in paediatric if r.label == "normal"][:4] + [r for r in paediatric if r.label == "pneumonia"][:4],
                    name="small-corpus")


@pytest.fixture(autouse=True)
def quick_out_of_source(small_corpus, monkeypatch):
    """Training runs in tests check 8 out-of-source images instead of every corpus image outside
    their tiny manifests (about 1,700: minutes per run). Tests of the corpus itself import
    ``corpus_manifest`` directly and still read all of it."""
    monkeypatch.setattr(crosssource, "corpus_manifest", lambda root=None: small_corpus)


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, above all on a 2-core machine shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def corpus() -> Path:
    root = data_root()
    if not (root / "metadata.csv").is_file():
        pytest.fail(f"the real corpus is missing at {root}; set CXR_DATA")
    return root


@pytest.fixture(scope="session")
def cxr3(corpus) -> Manifest:
    return Manifest.read(manifest_path("cxr3"))


@pytest.fixture(scope="session")
def makris(corpus) -> Manifest:
    return Manifest.read(manifest_path("makris2020"))


@pytest.fixture(scope="session")
def tiny_run(cxr3, small_corpus, tmp_path_factory) -> tuple[Path, Manifest]:
    """A finished classifier run on 4/2/3 real images per class at 32 px, and its manifest."""
    from classifier.config import make_config
    from classifier.train import train_classifier

    folder = tmp_path_factory.mktemp("tiny-run")
    manifest = few(cxr3, "train", 4) + few(cxr3, "val", 2) + few(cxr3, "test", 3)
    manifest.write(folder / "tiny.csv", ["image_id"])
    config = make_config(dataset=str(folder / "tiny.csv"), image_size=32, batch_size=4, epochs=1, seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crosssource, "corpus_manifest", lambda root=None: small_corpus)
        patch.setenv("CXR_CACHE", str(folder / "cache"))
        run = train_classifier(config, folder / "run", progress=False)
    torch.set_num_threads(threads)
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
