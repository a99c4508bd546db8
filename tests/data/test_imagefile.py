"""Inspection of single files: every bad-input kind gets its problem code."""


import numpy as np
import pytest
from PIL import Image

from conftest import BAD_FILES, pattern, save, write_bad_file
from imgclf.data.imagefile import InspectOptions, inspect_image

OPTIONS = InspectOptions(max_pixels=10_000_000, min_side=8)


@pytest.mark.parametrize("kind, problem", sorted(BAD_FILES.items()))
def test_bad_files_get_their_problem(tmp_path, kind, problem):
    path = write_bad_file(tmp_path / kind, kind)
    record = inspect_image(str(path), OPTIONS)
    assert record["problem"] == problem, record
    assert record["problem_detail"]


def test_good_png_is_described(tmp_path):
    path = save(pattern(1, 40), tmp_path / "a.png")
    record = inspect_image(str(path), OPTIONS)
    assert record["problem"] is None
    assert (record["format"], record["mode"], record["width"], record["height"]) == ("PNG", "RGB", 40, 40)
    assert len(record["sha256"]) == 64 and record["phash"] is not None


def test_cmyk_jpeg_is_readable_and_reported_as_cmyk(tmp_path):
    path = save(pattern(2, 40, "CMYK"), tmp_path / "c.jpg", format="JPEG")
    record = inspect_image(str(path), OPTIONS)
    assert record["problem"] is None and record["mode"] == "CMYK"


def test_16_bit_png_has_bit_depth_16(tmp_path):
    array = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40)
    path = save(Image.fromarray(array), tmp_path / "deep.png")
    record = inspect_image(str(path), OPTIONS)
    assert record["problem"] is None and record["bit_depth"] == 16


def test_palette_png_with_transparency(tmp_path):
    image = pattern(3, 40).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    path = save(image, tmp_path / "p.png", transparency=0)
    record = inspect_image(str(path), OPTIONS)
    assert record["problem"] is None and record["mode"] == "P" and record["transparency"]


def test_exif_orientation_is_read(tmp_path):
    image = pattern(4, 40)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(image, tmp_path / "rot.jpg", format="JPEG", exif=exif.tobytes())
    assert inspect_image(str(path), OPTIONS)["exif_orientation"] == 6


def test_bomb_is_refused_before_decoding(tmp_path):
    path = write_bad_file(tmp_path / "huge.png", "huge.png")
    record = inspect_image(str(path), InspectOptions(max_pixels=10**12, min_side=8))
    # Under a generous limit the same header is decoded, and its data is too short.
    assert record["problem"] in ("corrupt", "truncated")
    record = inspect_image(str(path), OPTIONS)
    assert record["problem"] == "decompression_bomb" and "10,000,000,000" in record["problem_detail"]


def test_unreadable_file(tmp_path):
    record = inspect_image(str(tmp_path / "missing.png"), OPTIONS)
    assert record["problem"] == "unreadable"


def test_image_statistics_follow_brightness_contrast_and_blur(tmp_path):
    from PIL import Image, ImageFilter

    from imgclf.data.imagestats import image_statistics

    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L")
    flat = Image.new("L", (64, 64), 200)
    stats = image_statistics(flat)
    assert stats == {"brightness": pytest.approx(200 / 255, abs=1e-6), "contrast": 0.0, "sharpness": 0.0}
    sharp, blurred = image_statistics(noise), image_statistics(noise.filter(ImageFilter.GaussianBlur(2)))
    assert sharp["contrast"] == pytest.approx(np.asarray(noise).std() / 255, rel=1e-4)
    assert blurred["sharpness"] < sharp["sharpness"] / 10
    # 16-bit images are scaled by their range, not clipped to 255 levels.
    deep = Image.fromarray(np.asarray(noise, dtype=np.uint16) * 257)
    assert deep.mode == "I;16"
    assert image_statistics(deep)["brightness"] == pytest.approx(sharp["brightness"], abs=1e-3)
    # Large images are measured at 256 px on their longest side.
    assert image_statistics(noise.resize((1024, 512)))["brightness"] == pytest.approx(sharp["brightness"], abs=0.01)
