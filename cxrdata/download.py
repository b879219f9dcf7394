"""Downloads that survive a dropped connection.

pooch does the parts it is built for: hash verification, retries with a growing wait, and moving
a file under its final name only once it is complete and verified. :class:`ResumingHTTP`, the
downloader we hand it, adds what pooch lacks: a body cut off half-way is kept as a ``.part`` file
and continued with an HTTP ``Range`` request, on the next retry or the next run, instead of being
fetched again from the first byte (the NIH archives are 4 GB each).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pooch
import requests
import urllib3
from tqdm import tqdm

pooch.get_logger().setLevel(logging.WARNING)
CHUNK = 1 << 16
BAR_FROM = 32 << 20  # byte progress bars only for downloads this large (archives)


class DownloadError(RuntimeError):
    """The server answered, and no retry will change its answer (404, 403 …)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason


# what urllib3 raised → why the host could not be reached (NewConnectionError before its base class)
UNREACHABLE = ((urllib3.exceptions.NameResolutionError, "its name does not resolve"),
               (urllib3.exceptions.NewConnectionError, "the connection was refused or the network is unreachable"),
               (urllib3.exceptions.ConnectTimeoutError, "connecting timed out"),
               (urllib3.exceptions.SSLError, "the TLS handshake failed"))


def unreachable(url: str, exc: BaseException) -> str | None:
    """``"HOST (why)"`` when ``exc`` says the server of ``url`` could not be reached at all: a
    cause shared by every file from that host. None for an answer about one file (an HTTP
    status, a hash mismatch, a body cut off part-way)."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        for kind, why in UNREACHABLE:
            if isinstance(current, kind):
                return f"{urlsplit(url).netloc or url} ({why})"
        # requests wraps urllib3's MaxRetryError in args[0]; MaxRetryError keeps the cause in .reason
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return None


def url_key(url: str) -> str:
    """A short file name that stands for ``url``."""
    return hashlib.sha1(url.encode()).hexdigest()[:20]


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


@dataclass
class ResumingHTTP:
    """A pooch downloader that continues partial bodies (see the module docstring)."""

    partial_dir: Path
    timeout: float = 60.0
    progress: bool = False

    def part_of(self, url: str) -> Path:
        return self.partial_dir / f"{url_key(url)}.part"

    def __call__(self, url: str, output_file, pooch_obj=None, check_only: bool = False) -> None:
        part = self.part_of(url)
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416:  # the stored part is not a prefix of this file
                part.unlink()
                raise requests.exceptions.ConnectionError(f"{url}: stale partial download dropped")
            if response.status_code >= 400:
                if _retryable(response.status_code):
                    response.raise_for_status()
                raise DownloadError(url, f"HTTP {response.status_code} {response.reason}")
            resumed = response.status_code == 206
            if not resumed:
                have = 0
            left = response.headers.get("Content-Length")
            total = have + int(left) if left is not None else None
            with open(part, "ab" if resumed else "wb") as out, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, leave=False,
                         desc=url.rsplit("/", 1)[-1][:30],
                         disable=not self.progress or (total or 0) < BAR_FROM) as bar:
                try:
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                except requests.exceptions.RequestException as exc:
                    cause = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "closed"
                    raise requests.exceptions.ConnectionError(
                        f"{url}: connection {cause} after {out.tell()} of {total or '?'} bytes "
                        "(kept; the next try resumes)") from None
        size = part.stat().st_size
        if total is not None and size != total:
            raise requests.exceptions.ConnectionError(
                f"{url}: connection closed after {size} of {total} bytes (kept; the next try resumes)")
        os.replace(part, output_file)


def fetch_verified(url: str, target: Path, sha256: str | None, downloader: ResumingHTTP,
                   retries: int) -> Path:
    """``target`` holding ``url``'s bytes, downloaded unless already there with the right hash.

    A hash mismatch (after ``retries`` more tries) raises ``ValueError`` and keeps nothing.
    """
    fetcher = pooch.create(path=target.parent, base_url="", retry_if_failed=retries,
                           registry={target.name: f"sha256:{sha256}" if sha256 else None},
                           urls={target.name: url})
    return Path(fetcher.fetch(target.name, downloader=downloader))
