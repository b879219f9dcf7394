"""``cxr classify serve``: a local web page and JSON API for live testing of a finished run.

One page (``static/index.html``, no build step, nothing loaded from the internet) and
``POST /api/predict`` (multipart, field ``files``). Each upload is written to a per-request
temporary folder under a name of our own (never the client's), read with the project's one
image-reading rule, checked by the quality gate, classified and explained by Grad-CAM for every
class; the folder is removed before the response is sent. Requests larger than the upload limit
are refused with 413, more files than allowed with 413, unreadable files with 422 naming the
problem. The model answers one image at a time (a lock), so concurrent requests queue.
"""
from __future__ import annotations

import base64
import hashlib
import io
import tempfile
import threading
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image

from cxrdata import CLASSES, ImageReadError, read_grayscale

from classifier.evaluation.gradcam import border_area
from classifier.inference.predict import Predictor
from classifier.inference.runs import model_summary
from classifier.inference.input_gate import checker_for_run
from classifier.evaluation.run_files import overlay

DEFAULT_MAX_UPLOAD_MB = 20
DEFAULT_MAX_FILES = 16
BORDER_SHORTCUT = 1.3  # × the even map's border share: above it, the sentence warns of a shortcut
DISCLAIMER = ("Research tool for studying GAN-augmented classifiers, not a diagnostic device: "
              "never use it to make decisions about patients.")


def border_sentence(share: float) -> str | None:
    """A plain warning when the predicted class's CAM sits mostly on the image border."""
    even = border_area()
    if not np.isfinite(share) or share <= BORDER_SHORTCUT * even:  # NaN: the map is empty
        return None
    return (f"{100 * share:.0f} % of the model's attention is on the image border (an even map puts "
            f"{100 * even:.0f} % there): it may be using markers, text or borders rather than the lungs.")


def png_data_url(rgb: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Service:
    """The loaded model and gate; :meth:`analyse` answers for one uploaded file's bytes."""

    def __init__(self, run_dir: Path | str, device: str = "auto", allow_unfinished: bool = False,
                 engine: str = "auto"):
        self.predictor = Predictor(run_dir, device, allow_unfinished, engine)
        self.summary = model_summary(run_dir, self.predictor.config)
        self.check = checker_for_run(self.predictor.config)
        self._lock = threading.Lock()

    def analyse(self, data: bytes, name: str) -> dict:
        """The page's answer for one file; raises :class:`ImageReadError` for an unreadable one."""
        with tempfile.TemporaryDirectory(prefix="cxr-upload-") as folder:
            path = Path(folder) / "upload"
            path.write_bytes(data)
            try:
                gray = read_grayscale(path)
            except ImageReadError as exc:
                raise ImageReadError(name, str(exc).split(": ", 1)[1]) from None
        with self._lock:
            lungs = self.predictor.lungs(gray, hashlib.sha256(data).hexdigest())
            verdict = self.check(gray, lungs)
            analysis = self.predictor(gray, CLASSES, lungs)
        predicted = analysis.predicted
        return {"name": name, "ok": True, "width": int(gray.shape[1]), "height": int(gray.shape[0]),
                "predicted": predicted, "probabilities": analysis.probabilities,
                "overlays": {c: png_data_url(overlay(analysis.image, m)) for c, m in analysis.maps.items()},
                "border_shares": {c: share if np.isfinite(share) else None  # an all-zero map has none
                                  for c, share in analysis.border_shares.items()},
                "border_sentence": border_sentence(analysis.border_shares[predicted]),
                "quality": {**verdict.as_dict(), "sentence": verdict.sentence()}, "reliable": verdict.ok}


def create_app(run_dir: Path | str, device: str = "auto", allow_unfinished: bool = False,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, max_files: int = DEFAULT_MAX_FILES,
               engine: str = "auto"):
    """The FastAPI application serving the page and the API for one run."""
    service = Service(run_dir, device, allow_unfinished, engine)
    limit = int(max_upload_mb * 2**20)
    page = resources.files("classifier").joinpath("static/index.html").read_text(encoding="utf-8")
    app = FastAPI(title="cxr classify serve", description=DISCLAIMER, docs_url=None, redoc_url=None)

    def refuse(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/model")
    def model() -> dict:
        return {**service.summary, "disclaimer": DISCLAIMER, "max_upload_mb": max_upload_mb, "max_files": max_files}

    @app.post("/api/predict")
    async def predict(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return refuse(413, f"upload of {int(declared) / 2**20:.1f} MB is over the {max_upload_mb:g} MB limit")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return refuse(413, f"upload is over the {max_upload_mb:g} MB limit")
        files = await _files(request, bytes(body), max_files)
        if isinstance(files, str):
            return refuse(413 if "at most" in files else 400, files)
        results = []
        for name, data in files:
            try:
                results.append(await run_in_threadpool(service.analyse, data, name))
            except ImageReadError as exc:
                results.append({"name": name, "ok": False, "error": str(exc)})
        if not any(r["ok"] for r in results):
            return JSONResponse({"detail": "; ".join(r["error"] for r in results), "results": results,
                                 "model": service.summary}, status_code=422)
        return {"model": service.summary, "disclaimer": DISCLAIMER, "results": results}

    return app


async def _files(request, body: bytes, max_files: int) -> list[tuple[str, bytes]] | str:
    """The uploaded ``files`` as ``(client name, bytes)``, or the reason the request is refused."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return "send the images as multipart/form-data in the field 'files'"

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=max_files + 1, max_fields=8)
    except Exception as exc:  # starlette reports malformed multipart bodies in several ways
        reason = str(getattr(exc, "detail", exc))
        if "Too many files" in reason:
            return f"more than {max_files} files: send at most {max_files} per request"
        return f"malformed multipart upload: {reason}"
    uploads = [item for item in form.getlist("files") if hasattr(item, "read")]
    try:
        if not uploads:
            return "no files: send one or more images in the field 'files'"
        if len(uploads) > max_files:
            return f"{len(uploads)} files: send at most {max_files} per request"
        return [(_safe_name(u.filename), await u.read()) for u in uploads]
    finally:
        await form.close()


def _safe_name(name: str | None) -> str:
    """The client's file name for display only: its last part, printable, at most 120 characters."""
    tail = (name or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in tail if ch.isprintable())[:120] or "upload"
