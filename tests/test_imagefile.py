"""Inspection of single files: every bad-input kind gets its problem code."""


import numpy as np
import pytest
from PIL import Image

from conftest import BAD_FILES, pattern, save, write_bad_file
from imgclf.imagefile import InspectOptions, inspect_image

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
