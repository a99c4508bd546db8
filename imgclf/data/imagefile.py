"""Inspection of one image file: what it is, whether it decodes, its hashes.

:func:`inspect_image` is pure with respect to the project (it reads one file
and returns a dict) so that validation can run it in a process pool.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFile, UnidentifiedImageError

from imgclf.data.imagestats import STAT_FIELDS, image_statistics
from imgclf.data.phash import phash

# Never decode truncated files silently: a truncated JPEG must be reported.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# We enforce our own, configurable pixel limit before decoding (see
# ``max_pixels``), so Pillow's global bomb check is switched off here.
Image.MAX_IMAGE_PIXELS = None

#: Formats that TensorFlow's decoders read (tf.io.decode_image). MPO is the
#: multi-picture JPEG of many cameras and phones: its first picture is used.
SUPPORTED_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF")
#: File name extensions treated as images when listing a folder.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
     ".ppm", ".pgm", ".pbm", ".jp2", ".heic", ".dcm"}
)
_EXTENSION_FORMAT = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG",
    ".bmp": "BMP", ".gif": "GIF",
}
_EXIF_ORIENTATION_TAG = 0x0112
#: Leading bytes of the formats we decode: such a file is a damaged image, not a non-image.
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


#: The fields of an inspection record, in order.
RECORD_FIELDS = ("sha256", "bytes", "format", "mode", "width", "height", "bit_depth", "transparency",
                 "frames", "exif_orientation", "phash", *STAT_FIELDS, "problem", "problem_detail")


@dataclass(frozen=True)
class InspectOptions:
    """What :func:`inspect_image` checks.

    Attributes:
        max_pixels: Width x height above which a file is refused as a
            decompression bomb, before it is decoded.
        min_side: Smallest acceptable width or height, in pixels.
    """

    max_pixels: int
    min_side: int


def _problem(code: str, detail: str) -> dict[str, str]:
    return {"problem": code, "problem_detail": detail}


def file_kind(mode: int) -> str:
    """What a file is, from its ``st_mode``, in words (for messages)."""
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def not_regular_detail(path: str, mode: int) -> str:
    """The problem detail of a path that is not a regular file (``not_a_regular_file``)."""
    return (f"{path} is {file_kind(mode)}, not a regular file; it was not opened (reading it could "
            "block forever or have side effects): remove it, or replace it with the image file itself")


def _png_bit_depth(data: bytes) -> int | None:
    # IHDR is always the first chunk: signature (8) + length (4) + type (4) +
    # width (4) + height (4), then the bit depth byte.
    if len(data) > 24 and data[12:16] == b"IHDR":
        return data[24]
    return None


def inspect_image(path: str, options: InspectOptions) -> dict[str, Any]:
    """Read one file and describe it.

    Args:
        path: Absolute path of the file.
        options: Limits to enforce.

    Returns:
        A dict with ``sha256``, ``bytes``, ``format``, ``mode``, ``width``,
        ``height``, ``bit_depth``, ``transparency``, ``exif_orientation``,
        ``phash`` (int or None), ``brightness``, ``contrast`` and ``sharpness``
        (:func:`imgclf.data.imagestats.image_statistics`) and, when the file is unusable, ``problem``
        (a finding code) and ``problem_detail``. A file with a problem still
        gets every field that could be read. A path that is not a regular file
        (a FIFO, a socket, a device; a symlink counts as its target) is never
        opened: its problem is ``not_a_regular_file``.
    """
    record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    record.update(transparency=False, frames=1)
    try:
        # Checked before opening: open() blocks forever on a FIFO without a writer.
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            record.update(_problem("not_a_regular_file", not_regular_detail(path, mode)))
            return record
        # O_NONBLOCK: should the file have become a FIFO since, opening it does not block.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                record.update(_problem("not_a_regular_file", not_regular_detail(path, mode)))
                return record
            data = handle.read()
    except OSError as exc:
        record.update(_problem("unreadable", f"cannot read the file: {exc.strerror or exc}"))
        return record
    record["bytes"] = len(data)
    record["sha256"] = hashlib.sha256(data).hexdigest()
    if not data:
        record.update(_problem("zero_byte", "the file is empty (0 bytes)"))
        return record

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data.startswith(_IMAGE_SIGNATURES):
            record.update(_problem("corrupt", "an image signature, but the header cannot be read"))
        else:
            record.update(_problem("not_an_image", "no image format recognises this file's content"))
        return record
    except (OSError, SyntaxError, ValueError) as exc:
        code = "truncated" if "truncat" in str(exc).lower() else "corrupt"
        record.update(_problem(code, f"the header cannot be read: {exc}"))
        return record

    fmt = image.format or "unknown"
    record.update(format=fmt, mode=image.mode, width=image.width, height=image.height)
    record["bit_depth"] = _png_bit_depth(data) if fmt == "PNG" else 8
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        record["bit_depth"] = 16 if image.mode.startswith("I;16") else 32
    record["transparency"] = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    record["frames"] = int(getattr(image, "n_frames", 1) or 1)

    if fmt not in SUPPORTED_FORMATS:
        record.update(_problem(
            "unsupported_format",
            f"{fmt} is not decoded by TensorFlow (supported: {', '.join(SUPPORTED_FORMATS)})",
        ))
        return record
    pixels = image.width * image.height
    if pixels > options.max_pixels:
        record.update(_problem(
            "decompression_bomb",
            f"{image.width}x{image.height} = {pixels:,} pixels exceeds the limit of "
            f"{options.max_pixels:,} (validation.max_image_pixels); not decoded",
        ))
        return record
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "PNG":
                # verify() checks every chunk's CRC; load() alone does not.
                image.verify()
                image = Image.open(io.BytesIO(data))
            image.load()
    except OSError as exc:
        text = str(exc)
        code = "truncated" if "truncat" in text.lower() or "end of file" in text.lower() else "corrupt"
        record.update(_problem(code, f"decoding failed: {text}"))
        return record
    except (SyntaxError, ValueError, MemoryError) as exc:
        record.update(_problem("corrupt", f"decoding failed: {exc}"))
        return record

    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
    except Exception:  # a broken EXIF block does not make the pixels unusable
        orientation = None
    record["exif_orientation"] = int(orientation) if orientation else None

    if min(image.width, image.height) < options.min_side:
        record.update(_problem(
            "too_small",
            f"{image.width}x{image.height} pixels is below the minimum side of "
            f"{options.min_side} (validation.min_image_side)",
        ))
        return record
    record["phash"] = phash(image)
    record.update(image_statistics(image))
    return record


def extension_format(path: str) -> str | None:
    """The format a file's extension promises, or None if it promises none we decode."""
    return _EXTENSION_FORMAT.get(os.path.splitext(path)[1].lower())


def same_format(extension_format: str | None, content_format: str) -> bool:
    """Whether content matches what the extension promises (MPO is a JPEG)."""
    if extension_format is None:
        return True
    return extension_format == ("JPEG" if content_format == "MPO" else content_format)
