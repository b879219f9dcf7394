"""A stand-in for the public sources: an HTTP server on 127.0.0.1 that serves given files under
the real sources' path layouts, honours ``Range`` requests, and misbehaves on request.

Run as a script, it serves the whole corpus that way (corpus PNGs standing in for originals, one
file per image as the git copies serve them), writes the matching stand-in metadata and prints
the ``cxr data fetch`` options that use it::

    python tests/mirror_server.py ../shared/data/cxr /tmp/stand-in-metadata.csv

Faults per path: ``"404"``; ``"truncate"`` (announces the full length, sends half, closes, every
time); ``"drop-once"`` (the first response is cut off half-way, later ones are whole);
``"slow"`` (whole, in small chunks with a pause after each).
"""
from __future__ import annotations

import csv
import hashlib
import io
import sys
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

SLOW_CHUNK, SLOW_PAUSE = 4096, 0.02


class MirrorServer:
    def __init__(self, files: dict[str, bytes] | None = None):
        self.files = dict(files or {})
        self.faults: dict[str, str] = {}
        self.log: list[tuple[str, str]] = []  # (path, Range header or "")
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def requests_for(self, path: str) -> list[str]:
        with self.lock:
            return [rng for p, rng in self.log if p == path]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                path = unquote(self.path.split("?", 1)[0])
                with server.lock:
                    server.log.append((path, self.headers.get("Range", "")))
                    fault = server.faults.get(path)
                    if fault == "drop-once":
                        server.faults.pop(path)
                data = server.files.get(path)
                if data is None or fault == "404":
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if fault in ("truncate", "drop-once"):
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                step = SLOW_CHUNK if fault == "slow" else len(body) or 1
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    if fault == "slow":
                        self.wfile.flush()
                        time.sleep(SLOW_PAUSE)

        return Handler


def tar_gz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def file_path(row: dict) -> str:
    """Where a mirror at ``/<source>`` serves a metadata row's original, one file per image."""
    from cxrdata.sources import SOURCES

    return unquote(SOURCES[row["source"]].url_of(row, f"/{row['source']}"))


def serve_corpus(corpus: Path, metadata_out: Path) -> None:
    """Serve every corpus image as its own original (see the module docstring) until Ctrl-C."""
    from cxrdata.sources import SOURCES

    with open(corpus / "metadata.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    server = MirrorServer()
    for row in rows:
        data = (corpus / row["path"]).read_bytes()
        row["original_sha256"] = hashlib.sha256(data).hexdigest()
        server.files[file_path(row)] = data
    with open(metadata_out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)
    with server:
        mirrors = " ".join(f"--mirror {name}={server.url}/{name}" for name in SOURCES)
        print(f"FETCH_ARGS=\"--metadata {metadata_out} {mirrors}\"", flush=True)
        server.thread.join()


if __name__ == "__main__":
    serve_corpus(Path(sys.argv[1]), Path(sys.argv[2]))
