"""One input image (a user's file, an upload): its lungs, and whether they are plausible."""
from __future__ import annotations

import hashlib

import numpy as np

from .geometry import shape_of
from .segmenter import Segmenter, default_segmenter

QUESTION = "is this a frontal chest X-ray?"


def lungs_of(gray: np.ndarray, image_sha256: str | None = None, patient_id: str | None = None,
             segmenter: Segmenter | None = None) -> np.ndarray:
    """The predicted lung mask of a 2-D uint8 image at its own size, from the fold model a manifest
    gives the same file: its patient's (``patient_id``, when known), else the one its file's
    ``image_sha256`` picks (by default the sha256 of its pixels, for an image known by nothing else)."""
    segmenter = segmenter or default_segmenter()
    identity = image_sha256 or hashlib.sha256(np.ascontiguousarray(gray).tobytes()).hexdigest()
    return segmenter.masks([gray], segmenter.fold_for(patient_id, identity))[0]


def lung_problem(mask: np.ndarray) -> str | None:
    """One line when the lungs are implausible (``no lungs found: is this a frontal chest X-ray?``)."""
    problem = shape_of(mask).problem
    return f"{problem}: {QUESTION}" if problem else None
