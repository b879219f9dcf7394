"""Reading every input kind to one uint8 grayscale channel, and clear errors for bad files."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import RAW_SAMPLES, png_header_only
from cxrdata.images import ImageReadError, fit_square, read_grayscale, stretch_to_uint8


@pytest.fixture
def gray() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(40, 30), dtype=np.uint8)
    image[0, 0], image[0, 1] = 0, 255  # full range, so a 16-bit round trip is exact
    return image


@pytest.mark.parametrize("name", sorted(p.name for p in RAW_SAMPLES.glob("*")) or ["<missing>"])
def test_every_raw_sample_reads_to_one_uint8_channel(name):
    image = read_grayscale(RAW_SAMPLES / name)
    assert image.ndim == 2 and image.dtype == np.uint8
    assert image.max() > image.min(), "a real X-ray is not constant"


def test_colour_modes_of_the_same_picture_read_identically(gray, tmp_path):
    """The colour-mode shortcut is impossible: L, RGB, opaque RGBA and palette agree."""
    base = Image.fromarray(gray)
    base.save(tmp_path / "l.png")
    base.convert("RGB").save(tmp_path / "rgb.png")
    base.convert("RGBA").save(tmp_path / "rgba.png")
    base.convert("P").save(tmp_path / "p.png")
    for name in ("rgb.png", "rgba.png", "p.png"):
        np.testing.assert_array_equal(read_grayscale(tmp_path / name), gray, err_msg=name)


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 128  # half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.all(np.abs(read_grayscale(tmp_path / "a.png").astype(int) - 100) <= 1)


def test_sixteen_bit_png_equals_its_eight_bit_source(gray, tmp_path):
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    np.testing.assert_array_equal(read_grayscale(tmp_path / "wide.png"), gray)


def test_dicom_monochrome1_is_inverted(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    source = RAW_SAMPLES / "Fake_MONOHR1.dcm"
    dataset = pydicom.dcmread(source)
    assert dataset.PhotometricInterpretation == "MONOCHROME1"
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.save_as(tmp_path / "mono2.dcm")
    inverted, plain = read_grayscale(source), read_grayscale(tmp_path / "mono2.dcm")
    # equal up to rounding of exact halves in the 0..255 stretch
    np.testing.assert_allclose(inverted.astype(int), 255 - plain.astype(int), atol=1)
    assert np.corrcoef(inverted.ravel(), plain.ravel())[0, 1] < -0.99


def test_stretch_maps_range_to_0_255():
    out = stretch_to_uint8(np.array([[100, 150], [200, 100]]))
    np.testing.assert_array_equal(out, [[0, 128], [255, 0]])
    assert stretch_to_uint8(np.full((2, 2), 7)).max() == 0


def test_fit_square_crops_the_centre_and_resizes():
    image = np.zeros((10, 20), dtype=np.uint8)
    image[:, 5:15] = 255  # the centre square is white, the sides black
    out = fit_square(image, 10)
    assert out.shape == (10, 10) and out.min() == 255
    assert fit_square(image, 4).shape == (4, 4)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"this is not an image\n" * 10, "not a readable image"),
])
def test_bad_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_grayscale(path)
    assert str(path) in str(info.value)


def test_truncated_png_names_the_file(gray, tmp_path):
    path = tmp_path / "full.png"
    Image.fromarray(gray).save(path)
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="cut.png.*(corrupt|truncated)"):
        read_grayscale(cut)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="nowhere.png: file not found"):
        read_grayscale(tmp_path / "nowhere.png")


def test_float_tiff_is_stretched_and_non_finite_pixels_are_refused(gray, tmp_path):
    Image.fromarray(gray.astype(np.float32) / 7.0).save(tmp_path / "float.tiff")
    np.testing.assert_array_equal(read_grayscale(tmp_path / "float.tiff"), gray)
    broken = gray.astype(np.float32)
    broken[3, 3] = np.nan
    Image.fromarray(broken).save(tmp_path / "nan.tiff")
    with pytest.raises(ImageReadError, match="nan.tiff: some pixels are NaN"):
        read_grayscale(tmp_path / "nan.tiff")


def test_unsupported_mode_is_refused(tmp_path):
    Image.new("LAB", (4, 4)).save(tmp_path / "lab.tiff")
    with pytest.raises(ImageReadError, match="lab.tiff: unsupported image mode 'LAB'"):
        read_grayscale(tmp_path / "lab.tiff")


@pytest.mark.parametrize("side", [100_000, 9_000])  # past Pillow's hard limit; past ours only
def test_oversized_images_are_refused_from_their_header(tmp_path, side):
    bomb = tmp_path / "bomb.png"
    png_header_only(bomb, side, side)
    with pytest.raises(ImageReadError, match=rf"bomb.png: refused: .*{side}"):
        read_grayscale(bomb)


def test_jpeg_exif_orientation_is_applied(gray, tmp_path):
    picture = Image.fromarray(np.tile(gray, (1, 2)))  # 40 × 60: wider than tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    picture.save(tmp_path / "tagged.jpg", quality=95, exif=exif)
    picture.save(tmp_path / "plain.jpg", quality=95)
    upright = read_grayscale(tmp_path / "tagged.jpg")
    assert upright.shape == (60, 40)
    assert np.array_equal(upright, np.rot90(read_grayscale(tmp_path / "plain.jpg"), k=-1))
