"""The lungs: a segmenter trained on human-drawn masks (cross-fitted by patient), masks for any
image (cached), and what part of an image a model sees (``full``, ``lungs-removed``,
``lungs-only``, ``outline``). How it works: docs/lungs.md."""
from .cache import lung_masks, seen_masks, with_region
from .geometry import dice, hd95, shape_of
from .inputs import lung_problem, lungs_of
from .regions import REGIONS, apply_region, dilated, feathered, from_lungs_view, lungs_view
from .segmenter import Segmenter, SegmenterError, default_segmenter

__all__ = ["REGIONS", "Segmenter", "SegmenterError", "apply_region", "default_segmenter", "dice",
           "dilated", "feathered", "from_lungs_view", "hd95", "lung_masks", "lung_problem", "lungs_of", "lungs_view",
           "seen_masks", "shape_of", "with_region"]
