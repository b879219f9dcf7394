"""One input image (a user's file, an upload): its lungs, whether they are plausible, and the
square image a model of a given region sees."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..images import fit_square
from .geometry import shape_of
from .regions import apply_region, as_uint8
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


def as_seen(gray: np.ndarray, mask: np.ndarray | None, size: int, region: str) -> np.ndarray:
    """``gray`` centre-cropped and resized to ``size`` as in training, then shown as a model of
    ``region`` sees it (``mask``, at ``gray``'s size, is needed for every region but ``full``)."""
    square = fit_square(gray, size)
    if region == "full":
        return square
    fitted = fit_square(mask.astype(np.uint8) * 255, size) >= 128
    shown = apply_region(torch.tensor(square, dtype=torch.float32).div(255)[None, None],
                         torch.from_numpy(fitted).float()[None, None], region)
    return as_uint8(shown[0, 0])
