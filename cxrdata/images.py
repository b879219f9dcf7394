"""Read any chest X-ray file into one 8-bit grayscale channel, the same way for every class.

Colour mode must never reach a model: in public COVID sets the covid images are often RGB(A)
figures while normal and pneumonia images are grayscale, so a classifier fed raw channels could
separate the classes by colour mode alone. Every reader here returns a 2-D ``uint8`` array.

Conversion rules (one per input kind, documented so results can be reproduced):

* 8-bit grayscale (``L``, ``1``): as is.
* RGB, CMYK, YCbCr: ITU-R 601 luma (Pillow's ``convert("L")``).
* RGBA, LA, palette with transparency: alpha-composited on black, then luma
  (the same rule the shared corpus was built with).
* 16-bit / 32-bit integer PNG (``I;16``, ``I``) and 32-bit float TIFF (``F``): min-max stretched
  to 0..255 (a float image with NaN or infinite pixels is refused).
* DICOM (optional ``pydicom`` extra): modality LUT, VOI LUT, MONOCHROME1 inverted, then
  min-max stretched to 0..255.

JPEGs are turned upright by their EXIF orientation (a phone photo of a film is read as it was
held). Images of more than :data:`MAX_PIXELS` pixels are refused from their header, before any
pixel is decoded.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_EIGHT_BIT = {"L", "1"}
_COLOUR = {"RGB", "CMYK", "YCbCr"}
_ALPHA = {"RGBA", "LA", "PA", "P", "RGBa", "La"}
_WIDE = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
# Refused before decoding: a 43 × 43 cm detector at 0.1 mm pixels is 18.5 megapixels, so anything
# past this is a decompression bomb (a small file claiming a huge image) or not a chest X-ray.
MAX_PIXELS = 64 * 10**6
EXIF_ORIENTATION = 0x0112
BOMB_HINT = "a chest X-ray is far smaller; export it at a normal size"


class ImageReadError(ValueError):
    """An input image cannot be read; the message names the file and what to do."""

    def __init__(self, path: Path | str, reason: str, hint: str = ""):
        self.path = Path(path)
        message = f"{path}: {reason}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


def is_dicom(path: Path) -> bool:
    """True for a file with a ``.dcm`` suffix or the DICOM ``DICM`` preamble marker."""
    if path.suffix.lower() in {".dcm", ".dicom"}:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_grayscale(path: Path | str) -> np.ndarray:
    """Decode ``path`` to a 2-D ``uint8`` array (one grayscale channel).

    Raises :class:`ImageReadError` naming the file for a missing, empty, corrupt, truncated or
    non-image file and for an unsupported mode.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file not found", "check the data root (CXR_DATA) and the manifest path")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty", "re-download or re-export it")
    if is_dicom(path):
        return _read_dicom(path)
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: the size is checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(image.size, path)
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # photos of films: as the camera held them
                return _to_gray(image, path)
    except Image.DecompressionBombError as exc:  # a header beyond Pillow's hard limit, met while opening
        raise ImageReadError(path, f"refused: {exc}", BOMB_HINT) from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a readable image", "expected PNG, JPEG or DICOM") from None
    except (OSError, SyntaxError) as exc:  # how Pillow reports truncated or corrupt streams
        raise ImageReadError(path, f"corrupt or truncated image: {exc}", "re-download or re-export it") from None


def image_size(path: Path | str) -> tuple[int, int]:
    """``(width, height)`` of an image as :func:`read_grayscale` would return it (EXIF rotation
    applied), read from its header without decoding any pixels."""
    path = Path(path)
    try:
        if is_dicom(path):
            import pydicom

            dataset = pydicom.dcmread(path, stop_before_pixels=True)
            return int(dataset.Columns), int(dataset.Rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                turned = image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)  # a quarter turn
    except Exception as exc:  # Pillow and pydicom raise many types for broken files
        raise ImageReadError(path, f"unreadable image header: {exc}", "re-download or re-export it") from None
    return (height, width) if turned else (width, height)


def _check_size(size: tuple[int, int], path: Path) -> None:
    """Refuse an image larger than :data:`MAX_PIXELS` before any pixel is decoded."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageReadError(path, f"refused: {width}×{height} pixels is more than {MAX_PIXELS // 10**6} megapixels",
                             BOMB_HINT)


def _to_gray(image: Image.Image, path: Path) -> np.ndarray:
    mode = image.mode
    if mode in _EIGHT_BIT:
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if mode in _COLOUR:
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if mode in _ALPHA:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(black, rgba).convert("L"), dtype=np.uint8)
    if mode in _WIDE:
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageReadError(path, "some pixels are NaN or infinite", "re-export it with finite values")
        return stretch_to_uint8(values)
    raise ImageReadError(path, f"unsupported image mode {mode!r}",
                         "convert it to 8-bit or 16-bit grayscale, RGB or RGBA")


def stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Min-max stretch any numeric array to 0..255 ``uint8`` (a constant image maps to 0)."""
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * 255.0 / (high - low)).astype(np.uint8)


def _read_dicom(path: Path) -> np.ndarray:
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:
        raise ImageReadError(path, "DICOM input needs pydicom",
                             "install the extra: pip install -e '.[dicom]'") from None
    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except Exception as exc:  # pydicom raises many types for broken files
        raise ImageReadError(path, f"unreadable DICOM: {exc}", "re-export it") from None
    if pixels.ndim != 2:
        raise ImageReadError(path, f"DICOM pixel data has shape {pixels.shape}",
                             "only single-frame grayscale DICOM is supported")
    values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset).astype(np.float64)
    if str(getattr(dataset, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        values = values.max() - values
    return stretch_to_uint8(values)


def fit_square(gray: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``gray`` to a square and resize it to ``size``×``size`` (Lanczos).

    Cropping rather than padding avoids black bars whose width would differ by source.
    """
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale array, got shape {gray.shape}")
    height, width = gray.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(gray[top:top + side, left:left + side])
    if side != size:
        square = square.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(square, dtype=np.uint8)


CORPUS_MAX_SIDE = 512


def corpus_png(path: Path | str) -> bytes:
    """The corpus form of an original image, as PNG bytes: 8-bit grayscale by :func:`read_grayscale`,
    shrunk (never enlarged) to at most :data:`CORPUS_MAX_SIDE` px on the longer side by Pillow's
    ``thumbnail`` with Lanczos (its size rounding and its box reduction of images more than twice
    too large are part of the recipe), the original's ICC profile kept, saved with ``optimize=True``.

    With Pillow 13 this reproduces every corpus PNG byte for byte (``tests/test_fetch.py`` pins it);
    another zlib or Pillow may compress the same pixels to other bytes.
    """
    gray = Image.fromarray(read_grayscale(path))
    icc = None
    if not is_dicom(Path(path)):
        with Image.open(path) as original:
            icc = original.info.get("icc_profile")
    gray.thumbnail((CORPUS_MAX_SIDE, CORPUS_MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    gray.save(out, "PNG", optimize=True, **({"icc_profile": icc} if icc else {}))
    return out.getvalue()
