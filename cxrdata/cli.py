"""``cxr data``: build manifests, verify the data, time image reading."""
from __future__ import annotations

import time
from pathlib import Path

import click

from runkit.cli import OneLineErrors

from . import cache
from .dataset import CXRDataset
from .manifest import MANIFEST_DIR, Manifest, data_root, manifest_path, same_bytes_within_splits
from .splits import DEFAULT_SEED, write_manifests

MANIFEST_NAMES = ("cxr3", "makris2020")
VERIFY_SIZE = 8  # verify decodes every image in full; the resize after it only has to be cheap


def manifest_option(default: str = "cxr3"):
    return click.option("--manifest", "-m", default=default, show_default=True,
                        help="Manifest name in data_manifests/ (cxr3 or makris2020) or a CSV path.")


def require_data_root() -> Path:
    root = data_root()
    if not (root / "metadata.csv").is_file():
        raise click.ClickException(
            f"no chest X-ray corpus at {root}: put the corpus (metadata.csv and images/) there, "
            "or point CXR_DATA at the folder that holds it")
    return root


@click.group("data", cls=OneLineErrors)
def data_cli():
    """Manifests and checks for the chest X-ray corpus (data root: $CXR_DATA, else
    ../shared/data/cxr beside the repository, else data/cxr)."""


@data_cli.command("manifests")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The corpus metadata.csv [default: <data root>/metadata.csv].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=MANIFEST_DIR,
              show_default=True, help="Folder to write cxr3.csv and makris2020.csv into.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
              help="Seed of the patient-grouped split (changing it changes every split).")
def manifests_cmd(metadata: Path | None, out: Path, seed: int):
    """Regenerate the committed manifests from metadata.csv (deterministic)."""
    metadata = metadata or require_data_root() / "metadata.csv"
    manifests, leakage = write_manifests(metadata, out, seed)
    for name, manifest in manifests.items():
        click.echo(f"{out / name}.csv: {manifest!r}")
    click.echo(leakage.describe("makris2020 (published split)"))


@data_cli.command("verify")
@click.option("--manifest", "-m", "names", multiple=True, default=MANIFEST_NAMES, show_default=True,
              help="Manifest(s) to verify: a name in data_manifests/ or a CSV path; repeatable.")
@click.option("--allow-duplicates", is_flag=True,
              help="Report a path listed twice or the same image bytes in two splits as a warning "
                   "instead of an error (one path with two labels is always an error).")
def verify_cmd(names: tuple[str, ...], allow_duplicates: bool):
    """Check every manifest: its rows (paths inside the data root, no duplicates or cross-split
    copies), and every file (present, matching its sha256, decodable as an image)."""
    require_data_root()
    problems = 0
    for name in names:
        manifest = Manifest.read(manifest_path(name), allow_duplicates=allow_duplicates)
        for notice in manifest.notices:
            click.echo(f"  warning: {notice}", err=True)
        for group in same_bytes_within_splits(manifest):
            click.echo(f"  note: same image bytes twice in {group[0].split}: "
                       + ", ".join(r.path for r in group), err=True)
        _, _, failed = cache.decode_readable(manifest, VERIFY_SIZE, progress=True)
        for _, reason in failed:
            click.echo(f"  {reason}", err=True)
        problems += len(failed)
        click.echo(f"{manifest!r}")
    if problems:
        raise click.ClickException(f"{problems} file(s) missing, mismatched or unreadable (listed above)")
    click.echo("all files present, matching their sha256 and readable")


@data_cli.command("bench")
@manifest_option()
@click.option("--split", default="train", show_default=True, help="Split to read.")
@click.option("--size", type=int, default=224, show_default=True, help="Side of the square images, px.")
def bench_cmd(manifest: str, split: str, size: int):
    """Print images/s reading a split cold (decode + resize) and warm (from the cache)."""
    for name, seconds, n in read_rates(manifest, split, size):
        click.echo(f"{name:>5}: {n / seconds:8.1f} images/s ({n} images in {seconds:.2f} s)")


def read_rates(manifest: str, split: str, size: int, limit: int | None = None) -> list[tuple[str, float, int]]:
    """Time a cold decode of every image (or the first ``limit``) and a warm pass over the cache."""
    chosen = Manifest.read(manifest_path(manifest)).select(split=split)
    chosen = Manifest(chosen.records[:limit], name=chosen.name)
    start = time.perf_counter()
    cache.decode_all(chosen, size, progress=False)
    cold = time.perf_counter() - start
    CXRDataset(chosen, size, progress=False)  # make sure the cache file exists
    start = time.perf_counter()
    warm_set = CXRDataset(chosen, size, progress=False)
    for i in range(len(warm_set)):
        warm_set[i]
    warm = time.perf_counter() - start
    return [("cold", cold, len(chosen)), ("warm", warm, len(chosen))]
