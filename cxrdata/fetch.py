"""``cxr data fetch``: build the corpus from the public originals.

For each metadata row of the chosen sources: download the original (one file per image from the
source's pinned git copy, or out of the publisher's archives: for an image the copy lacks, or
for every image with ``route="archives"``), check it against ``original_sha256``, convert it as the corpus was made
(:func:`cxrdata.images.corpus_png`) and write it under its corpus path, atomically. An image
already there with the right ``sha256`` is skipped, so an interrupted fetch continues where it
stopped; a download cut off half-way continues from its last byte (:mod:`cxrdata.download`).
Work files live in ``<dest>/.fetch/`` and are removed once used.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tarfile
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

from tqdm import tqdm

from runkit.rundir import write_bytes

from .download import ResumingHTTP, fetch_verified, unreachable, url_key
from .images import ImageReadError, corpus_png
from .manifest import sha256_of
from .sources import SOURCES, Source

PACKAGED_METADATA = Path(__file__).with_name("corpus-metadata.csv")
WORK = ".fetch"
ROUTES = ("files", "archives")  # one file per image first | the publishers' archives only


@dataclass(frozen=True)
class Failure:
    """An image not fetched: the URL tried, why, and the host it could not reach, if that was it."""

    image_id: str
    url: str
    reason: str
    unreachable: str | None = None  # "HOST (why)": every image from that host fails alike


@dataclass
class FetchReport:
    """What one fetch did, image by image (ids)."""

    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    bytes_differ: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.fetched)} fetched, {len(self.skipped)} skipped (already there and "
                f"verified), {len(self.failed)} failed")

    def unreachable_hosts(self) -> dict[str, int]:
        """``"HOST (why)"`` → how many images failed for that one cause."""
        return dict(Counter(f.unreachable for f in self.failed if f.unreachable))


def read_metadata(path: Path) -> list[dict]:
    """Rows of a corpus metadata CSV, with their file names checked to stay inside the corpus."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for line, row in enumerate(rows, start=2):
        relative = Path(row.get("path") or "")
        name = row.get("original_name") or ""
        if relative.is_absolute() or ".." in relative.parts or not relative.parts \
                or not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"{path}, line {line}: path {row.get('path')!r} / original_name "
                             f"{name!r} must be a relative path inside the corpus and a bare file name")
    return rows


def check_writable(dest: Path) -> None:
    """Refuse, before any download, a destination that cannot be written."""
    try:
        (dest / WORK).mkdir(parents=True, exist_ok=True)
        probe = dest / WORK / f".probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"{dest}: cannot write the corpus there ({exc.strerror or exc}); "
                      "choose another --out or CXR_DATA") from None


class Fetcher:
    """Fetches metadata rows into ``dest``; see the module docstring."""

    def __init__(self, dest: Path, *, mirrors: dict[str, str] | None = None, jobs: int = 4,
                 retries: int = 3, timeout: float = 60.0, progress: bool = True, route: str = "files"):
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; choose one of {', '.join(ROUTES)}")
        self.dest, self.mirrors, self.jobs, self.retries, self.route = dest, mirrors or {}, jobs, retries, route
        self.work = dest / WORK
        self.downloader = ResumingHTTP(self.work / "partial", timeout=timeout, progress=progress)
        self.progress = progress
        self.report = FetchReport()
        self.unreachable: dict[str, str] = {}  # host → "HOST (why)", once a download found it so

    def run(self, rows: list[dict]) -> FetchReport:
        check_writable(self.dest)
        for name, source in SOURCES.items():
            pending = []
            for row in (r for r in rows if r["source"] == name):
                target = self.dest / row["path"]
                if target.is_file() and sha256_of(target) == row["sha256"]:
                    self.report.skipped.append(row["image_id"])
                else:
                    pending.append(row)
            if not pending:
                continue
            if self.route == "files" or not source.archives:
                missed = self._per_image(source, pending)
                if missed and source.archives:  # what the git copy lacks, from the publisher's archives
                    self._from_archives(source, [row for row, _ in missed], dict(
                        (row["image_id"], failure) for row, failure in missed))
                else:
                    self.report.failed.extend(failure for _, failure in missed)
            else:
                self._from_archives(source, pending)
        return self.report

    # -- one file per image ------------------------------------------------------------------
    def _per_image(self, source: Source, rows: list[dict]) -> list[tuple[dict, Failure]]:
        """Fetch each row's file; return the rows that failed, with why."""
        base = self.mirrors.get(source.name)
        with ThreadPoolExecutor(self.jobs) as pool, \
                tqdm(total=len(rows), desc=source.name, unit="image", disable=not self.progress) as bar:
            missed = []
            for row, failure in zip(rows, pool.map(lambda row: self._one_image(source, row, base), rows)):
                bar.update()
                if failure:
                    missed.append((row, failure))
        return missed

    def _one_image(self, source: Source, row: dict, base: str | None) -> Failure | None:
        url = source.url_of(row, base)
        host = self._known_unreachable(url)
        if host:  # offline: the other images of that host would each wait through their retries
            return Failure(row["image_id"], url, f"not tried: cannot reach {host}", host)
        try:
            original = fetch_verified(url, self.work / source.name / row["original_name"],
                                      row["original_sha256"], self.downloader, self.retries)
        except Exception as exc:  # HTTP status, hash mismatch, network errors after the last retry
            return Failure(row["image_id"], url, _reason(exc), self._note_unreachable(url, exc))
        return self._convert(row, original, url)

    # -- archive sources ---------------------------------------------------------------------
    def _from_archives(self, source: Source, rows: list[dict], earlier: dict[str, Failure] | None = None) -> None:
        """Stream each archive once, taking out the wanted members. An archive whose member list
        is known from an earlier run and holds none of the wanted images is not fetched again.
        ``earlier``: why the git copy did not serve an image, said with the archives' reason."""
        wanted = {row["original_name"]: row for row in rows}
        problems, causes = [], set()
        for url in source.archive_urls(self.mirrors.get(source.name)):
            key = self.work / "archives" / url_key(url)
            listing = key.with_suffix(".members")  # "name<TAB>sha256 if it was read" per member
            if not wanted or (listing.is_file() and not _may_hold(listing.read_text(), wanted)):
                continue
            host = self._known_unreachable(url)
            if host:  # the same host, already found unreachable: not tried again
                problems.append(f"{url}: not tried: cannot reach {host}")
                causes.add(host)
                continue
            try:
                fetch_verified(url, key, None, self.downloader, self.retries)
                members = []
                for name, read in _members(key):
                    row, digest = wanted.get(name), ""
                    if row is not None:
                        data = read()
                        digest = hashlib.sha256(data).hexdigest()
                        if digest == row["original_sha256"]:
                            original = self.work / source.name / name
                            write_bytes(original, data)
                            failure = self._convert(row, original, url)
                            if failure:
                                self.report.failed.append(failure)
                            del wanted[name]
                    members.append(f"{name}\t{digest}")
                write_bytes(listing, "\n".join(members).encode())
            except Exception as exc:  # one bad archive loses its images, not the others'
                problems.append(f"{url}: {_reason(exc)}")
                causes.add(self._note_unreachable(url, exc))
            finally:
                key.unlink(missing_ok=True)
        host = causes.pop() if len(causes) == 1 else None  # every archive failed for the same host
        for row in wanted.values():
            first = (earlier or {}).get(row["image_id"])
            self.report.failed.append(Failure(
                row["image_id"], source.archive_base if not problems else problems[0],
                (f"not in the git copy ({first.url}: {first.reason}), and " if first else "")
                + f"{row['original_name']} with sha256 {row['original_sha256'][:12]}… is in none of the archives read"
                + (f"; unreadable: {'; '.join(problems)}" if problems else ""), host))

    # -- shared ------------------------------------------------------------------------------
    def _known_unreachable(self, url: str) -> str | None:
        """``"HOST (why)"`` if an earlier download found ``url``'s host unreachable."""
        return self.unreachable.get(urlsplit(url).netloc)

    def _note_unreachable(self, url: str, exc: BaseException) -> str | None:
        """``"HOST (why)"`` if ``exc`` says ``url``'s host cannot be reached (remembered for the
        other downloads from it), else None."""
        host = unreachable(url, exc)
        if host:
            self.unreachable[urlsplit(url).netloc] = host
        return host

    def _convert(self, row: dict, original: Path, url: str) -> Failure | None:
        """Write the corpus form of a verified original; the Failure if it cannot be read."""
        try:
            png = corpus_png(original)
        except ImageReadError as exc:
            return Failure(row["image_id"], url, _reason(exc))
        write_bytes(self.dest / row["path"], png)
        original.unlink(missing_ok=True)
        if hashlib.sha256(png).hexdigest() != row["sha256"]:
            self.report.bytes_differ.append(row["image_id"])
        self.report.fetched.append(row["image_id"])
        return None


def _reason(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _may_hold(listing: str, wanted: dict[str, dict]) -> bool:
    """Whether an archive with this member listing may hold a wanted original."""
    for line in listing.splitlines():
        name, _, digest = line.partition("\t")
        if name in wanted and digest in ("", wanted[name]["original_sha256"]):
            return True
    return False


def _members(archive: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(base name, reader of its bytes) for each file in a zip or tar(.gz) archive, in order."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield Path(info.filename).name, lambda info=info: zf.read(info)
        return
    with tarfile.open(archive, "r|*") as tf:  # streamed: one pass over a 4 GB .tar.gz
        for member in tf:
            if member.isfile():
                yield Path(member.name).name, lambda member=member: tf.extractfile(member).read()


def write_metadata(rows_source: Path, dest: Path) -> None:
    """Put the metadata the corpus was fetched with at ``dest/metadata.csv`` (atomically)."""
    write_bytes(dest / "metadata.csv", rows_source.read_bytes())
    shutil.rmtree(dest / WORK, ignore_errors=True)
