"""A bounded load test of ``cxr classify serve`` on the loopback interface.

Starts the real server in its own process on a free port, sends ``requests`` uploads
``concurrency`` at a time (real images and bad files mixed), checks every answer, and compares
the server's resident memory before and after (read from ``/proc``).
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BAD_FILES = {"empty.png": b"", "text.png": b"not an image\n" * 40,
             "page.jpg": b"<!doctype html><html><body>hello</body></html>"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with each file in the field ``files``, and its content type."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, data in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(port: int, files: list[tuple[str, bytes]], timeout: float = 60) -> tuple[int, dict]:
    body, content_type = multipart(files)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/api/predict", body, {"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for process {pid}")


class Server:
    """``with Server(run) as server:`` runs ``cxr classify serve`` on a free loopback port."""

    def __init__(self, run_dir: Path | str, extra: tuple[str, ...] = (), start_timeout: float = 120):
        self.port = free_port()
        command = [sys.executable, "-m", "pipelines.cli", "classify", "serve", str(run_dir),
                   "--port", str(self.port), *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server stopped at start: {self.process.stdout.read()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise TimeoutError(f"the server did not listen on port {self.port} within {start_timeout:.0f} s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_load(run_dir: Path | str, images: list[Path], requests: int = 200, concurrency: int = 8,
             warmup: int = 16) -> dict:
    """Send ``requests`` uploads (every fourth a bad file) and check each answer: a real image
    gets 200 with a prediction, a bad file 422 naming it. Returns the counts, latencies and the
    server's memory before and after (after ``warmup`` requests, so start-up growth is excluded)."""
    jobs = []
    for i in range(requests):
        if i % 4 == 3:
            name = list(BAD_FILES)[i // 4 % len(BAD_FILES)]
            jobs.append((f"{i}-{name}", BAD_FILES[name], False))
        else:
            image = images[i % len(images)]
            jobs.append((f"{i}-{image.name}", image.read_bytes(), True))

    def send(job) -> tuple[bool, float]:
        name, data, readable = job
        start = time.perf_counter()
        status, answer = post(server.port, [(name, data)])
        seconds = time.perf_counter() - start
        if readable:
            right = status == 200 and answer["results"][0]["ok"] and answer["results"][0]["name"] == name
        else:
            right = status == 422 and name in answer.get("detail", "")
        return right, seconds

    with Server(run_dir) as server:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(send, jobs[:warmup]))
            before = rss_mb(server.process.pid)
            start = time.perf_counter()
            outcomes = list(pool.map(send, jobs))
            wall = time.perf_counter() - start
        after = rss_mb(server.process.pid)
        alive = server.process.poll() is None
    latencies = sorted(s for _, s in outcomes)
    return {"requests": requests, "concurrency": concurrency, "correct": sum(r for r, _ in outcomes),
            "bad_files": sum(1 for *_, readable in jobs if not readable), "wall_s": wall,
            "requests_per_s": requests / wall, "latency_p50_s": latencies[len(latencies) // 2],
            "latency_p95_s": latencies[int(0.95 * (len(latencies) - 1))], "rss_before_mb": before,
            "rss_after_mb": after, "server_alive": alive}
