"""``cxr data``: fetch the corpus, build manifests, verify the data, time image reading."""
from __future__ import annotations

from pathlib import Path

import click

from runkit.errors import OneLineErrors
from runkit.options import choices, comma_joined, overwrite_option, renamed_option

from . import cache
from .dataset import read_rates
from .fetch import PACKAGED_METADATA, ROUTES, Fetcher, read_metadata, write_metadata
from .importing import DEFAULT_EXCLUDE, DEFAULT_MAP, SKIP, import_dataset
from .manifest import Manifest, data_root, manifest_dir, manifest_path, same_bytes_within_splits, sidecar_path
from .sources import SOURCES
from .splits import DEFAULT_SEED, write_manifests

MANIFEST_NAMES = ("cxr3", "makris2020")
MASKS = "lung-masks"  # --mirror name of V7's mask folder
VERIFY_SIZE = 8  # verify decodes every image in full; the resize after it only has to be cheap


def manifest_option(default: str = "cxr3"):
    return renamed_option("--dataset", "manifest", old=("--manifest", "-m"), default=default, show_default=True,
                          help="Manifest name in data_manifests/ (cxr3 or makris2020) or a CSV path.")


def require_data_root() -> Path:
    root = data_root()
    if not (root / "metadata.csv").is_file():
        raise click.ClickException(
            f"no chest X-ray corpus at {root}: `make fetch` (or FETCH=1 on the make "
            "command; cxr data fetch) downloads it from the public sources, or point CXR_DATA at a "
            "folder that holds it")
    return root


@click.group("data", cls=OneLineErrors)
def data_cli():
    """Manifests and checks for the chest X-ray corpus (data root: $CXR_DATA, else
    ../shared/data/cxr beside the repository, else data/cxr)."""


@data_cli.command("root")
def root_cmd():
    """Print the data root; exit 1, saying how to get the corpus, when none is there."""
    click.echo(require_data_root())


@data_cli.command("fetch")
@renamed_option("--out", "dest", old=("--dest",), type=click.Path(file_okay=False, path_type=Path), default=None,
                help="Folder to build the corpus in [default: the data root, $CXR_DATA or data/cxr].")
@click.option("--sources", default=",".join(SOURCES), show_default=True,
              help="Comma-separated sources to fetch (cxr3 needs ieee8023, figure1 and nih; the "
                   "Makris split needs ieee8023 and kaggle-paediatric).")
@click.option("--jobs", type=click.IntRange(min=1), default=4, show_default=True,
              help="Parallel downloads of per-image sources (archives are read one at a time).")
@click.option("--mirror", "mirrors", multiple=True, metavar="SOURCE=URL",
              help="Use URL instead of a source's base URL (a mirror, or a local server in tests); "
                   f"repeatable. The path layout below it must be the source's; {MASKS} is V7's mask folder.")
@click.option("--metadata", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=PACKAGED_METADATA, show_default="the corpus metadata shipped with the package",
              help="Corpus metadata CSV: which images, their originals' names and hashes.")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Retries per download after a network error or hash mismatch (waits 1, 2, 3 … s).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds to wait for a server to connect or send the next bytes.")
@click.option("--from", "route", type=click.Choice(ROUTES), default="files", show_default=True,
              help="files: one file per image from pinned git commits (under 1.1 GB in all), an image a "
                   "copy lacks from its publisher's archives; archives: the NIH and Kermany images from "
                   "the publishers' archives only (about 44 GB downloaded for 1,284 images).")
@click.option("--masks/--no-masks", default=True, show_default=True,
              help="Also fetch the 584 human lung masks (V7 Labs, CC BY 4.0, pinned commit; 4 MB) into the masks "
                   "root ($CXR_LUNG_MASKS, ../shared/data/lung-masks or data/lung-masks), as docs/lungs.md says.")
@click.option("--if-missing", is_flag=True, help="Do nothing when the destination already holds a corpus.")
def fetch_cmd(dest, sources, jobs, mirrors, metadata, retries, timeout, route, masks, if_missing):
    """Download the corpus's originals from their public sources (pinned revisions), check each
    against its SHA-256, convert them exactly as the corpus was made and write them with the
    metadata. Resumable: run it again after an interruption or failure; verified images are skipped.
    Sources, URLs and licences: docs/data.md, "Data sources"."""
    dest = (dest or data_root()).expanduser().resolve()
    if if_missing and (dest / "metadata.csv").is_file():
        click.echo(f"corpus present at {dest}; nothing fetched")
        return
    chosen = set(choices(sources, SOURCES, "--sources", "source"))
    base_urls = parse_mirrors(mirrors)
    rows = read_metadata(metadata)
    fetcher = Fetcher(dest, mirrors=base_urls, jobs=jobs, retries=retries, timeout=timeout, route=route)
    report = fetcher.run([row for row in rows if row["source"] in chosen])
    click.echo(f"{dest}: {report.summary()}")
    masks_failed = _fetch_masks(fetcher, base_urls.get(MASKS), retries) if masks else 0
    if report.bytes_differ:
        click.echo(f"  warning: {len(report.bytes_differ)} image(s) came from verified originals but "
                   "their PNG bytes differ from the corpus's (another Pillow or zlib compresses "
                   "differently); `cxr data verify` will list them", err=True)
    if report.failed:
        for host, count in report.unreachable_hosts().items():  # one cause, said once
            click.echo(f"  {count} image(s) failed: cannot reach {host}; the machine may be offline or "
                       "the host blocked: retry later, or fetch from a copy with --mirror SOURCE=URL", err=True)
        per_image = [f for f in report.failed if not f.unreachable]
        for failure in per_image[:20]:
            click.echo(f"  failed {failure.image_id}: {failure.url}: {failure.reason}", err=True)
        if len(per_image) > 20:
            click.echo(f"  … and {len(per_image) - 20} more", err=True)
        raise click.ClickException(f"{len(report.failed)} image(s) could not be fetched (see above); "
                                   "run the same command again to retry them")
    write_metadata(metadata, dest)
    if masks_failed:
        raise click.ClickException(f"{masks_failed} lung mask(s) could not be fetched (see above); the corpus is "
                                   "ready; run the same command again to retry them")
    click.echo(f"corpus ready at {dest}" + ("" if dest == data_root() else f" (set CXR_DATA={dest})"))


def _fetch_masks(fetcher: Fetcher, base: str | None, retries: int) -> int:
    """Fetch the lung masks beside the corpus; print what happened; return how many failed."""
    from .lungs.fetch import fetch_masks
    from .lungs.human import masks_root, read_mask_manifest

    root = masks_root()
    fetched, skipped, failed = fetch_masks(read_mask_manifest(), root, fetcher.downloader, retries, base)
    click.echo(f"{root}: lung masks: {len(fetched)} fetched, {len(skipped)} skipped (already there and verified), "
               f"{len(failed)} failed")
    for image_id, reason in failed[:20]:
        click.echo(f"  failed mask of {image_id}: {reason}", err=True)
    return len(failed)


def parse_mirrors(pairs: tuple[str, ...]) -> dict[str, str]:
    mirrors = {}
    for pair in pairs:
        name, _, url = pair.partition("=")
        if name not in (*SOURCES, MASKS) or not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{pair!r}: expected SOURCE=http(s)://… with SOURCE one of "
                                     f"{', '.join((*SOURCES, MASKS))}", param_hint="--mirror")
        mirrors[name] = url
    return mirrors


@data_cli.command("manifests")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The corpus metadata.csv [default: <data root>/metadata.csv].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write cxr3.csv and makris2020.csv into [default: $CXR_MANIFESTS or data_manifests/].")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
              help="Seed of the patient-grouped split (changing it changes every split).")
def manifests_cmd(metadata: Path | None, out: Path, seed: int):
    """Regenerate the committed manifests from metadata.csv (deterministic)."""
    out = out or manifest_dir()
    metadata = metadata or require_data_root() / "metadata.csv"
    manifests, leakage = write_manifests(metadata, out, seed)
    for name, manifest in manifests.items():
        click.echo(f"{out / name}.csv: {manifest!r}")
    click.echo(leakage.describe("makris2020 (published split)"))


@data_cli.command("import")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Manifest name: writes data_manifests/NAME.csv (and NAME.json, its "
              "data root); then pass DATASET=NAME / --dataset NAME to any command.")
@click.option("--map", "maps", multiple=True, metavar="NAME=CLASS",
              help="Map a class folder or label onto normal, covid, pneumonia or skip; repeatable. Defaults "
                   "(case, spaces, '-' and '_' ignored): " + ", ".join(f"{k}={v}" for k, v in DEFAULT_MAP.items())
                   + f". An unmapped name is an error listing it; '{SKIP}' leaves a class out.")
@click.option("--keep-split", is_flag=True, help="Keep the source's own split (train/ val/ test/ folders, or "
              "--split-column); a validation split is carved from its train patients when it has none. "
              "Default: the project's patient-grouped stratified 70/10/20 split.")
@click.option("--path-column", default="path", show_default=True, help="CSV: column of image paths, relative to "
              "the CSV's folder.")
@click.option("--label-column", default="label", show_default=True, help="CSV: column of class names.")
@click.option("--patient-column", default=None, help="CSV: column of patient ids (without one, every image is "
              "its own patient, and the import says so).")
@click.option("--source-column", default=None, help="CSV: column naming each image's source (hospital, "
              "collection) [default: the CSV's name].")
@click.option("--split-column", default=None, help="CSV: column of train / val / test (with --keep-split).")
@click.option("--view-column", default=None, help="CSV: column of the view (PA, AP …), kept in the manifest.")
@click.option("--exclude", multiple=True, default=DEFAULT_EXCLUDE, show_default=True,
              help="Folder: skip files whose path (from SRC) matches this glob; repeatable.")
@click.option("--strict", is_flag=True, help="Fail on the first unreadable image instead of skipping it.")
@overwrite_option("Replace an existing manifest of that name.")
@renamed_option("--out", "out_dir", old=("--out-dir",), type=click.Path(file_okay=False, path_type=Path), default=None,
                help="Folder for NAME.csv and NAME.json [default: $CXR_MANIFESTS or data_manifests/; elsewhere: "
                     "pass the CSV's path as the dataset].")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of the split.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_cmd(src, name, maps, keep_split, path_column, label_column, patient_column, source_column, split_column,
               view_column, exclude, strict, overwrite, out_dir, seed, quiet):
    """Turn SRC, a folder with one subfolder per class (below optional train/ val/ test/ folders)
    or a CSV of paths and labels, into a checked manifest with a patient-grouped split. Every
    image is decoded and hashed; nothing in SRC is copied or changed."""
    columns = {"path": path_column, "label": label_column, "patient": patient_column, "source": source_column,
               "split": split_column, "view": view_column}
    result = import_dataset(src, name, maps=maps, keep_split=keep_split, columns=columns, exclude=exclude,
                            strict=strict, overwrite=overwrite, out_dir=out_dir, seed=seed, progress=not quiet)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.unreadable:
        click.echo(f"skipped {len(result.unreadable)} unreadable file(s):", err=True)
        for _, reason in result.unreadable[:20]:
            click.echo(f"  {reason}", err=True)
    if result.duplicates:
        click.echo(f"note: {len(result.duplicates)} group(s) of files with identical bytes, each kept in one "
                   f"split (e.g. {', '.join(result.duplicates[0])})", err=True)
    click.echo(result.summary())
    dataset = name if result.path == manifest_path(name) else str(result.path)
    click.echo(f"next: cxr data verify {dataset}; make classify DATASET={dataset}")


@data_cli.command("verify")
@click.argument("positional", nargs=-1, metavar="[NAME]...")
@renamed_option("--dataset", "names", old=("--manifest", "-m"), multiple=True, default=None,
                help="Manifest(s) to verify: a name in data_manifests/ (cxr3, makris2020, one made by cxr "
                     "data import) or a CSV path; comma-separated or repeated [default: cxr3, makris2020].")
@click.option("--allow-duplicates", is_flag=True,
              help="Report a path listed twice or the same image bytes in two splits as a warning "
                   "instead of an error (one path with two labels is always an error).")
def verify_cmd(positional: tuple[str, ...], names: tuple[str, ...], allow_duplicates: bool):
    """Check every manifest: its rows (paths inside the data root, no duplicates or cross-split
    copies), and every file (present, matching its sha256, decodable as an image)."""
    problems = 0
    for name in comma_joined((*positional, *names)) or MANIFEST_NAMES:
        if not sidecar_path(manifest_path(name)).is_file():  # the project's manifests: the corpus
            require_data_root()
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
@renamed_option("--image-size", "size", old=("--size",), type=int, default=224, show_default=True,
                help="Side of the square images, px.")
def bench_cmd(manifest: str, split: str, size: int):
    """Print images/s reading a split cold (decode + resize) and warm (from the cache)."""
    for name, seconds, n in read_rates(manifest, split, size):
        click.echo(f"{name:>5}: {n / seconds:8.1f} images/s ({n} images in {seconds:.2f} s)")
