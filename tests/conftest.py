"""Shared fixtures: tiny image folders made by the tests themselves."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """A data set from ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the shared data sets are only beside the project's CI clone")
    return path


def pattern(seed: int, size: int = 32, mode: str = "RGB") -> Image.Image:
    """A smooth random image (distinct seeds give distinct perceptual hashes)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(blocks, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    return image.convert(mode)


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def make_folder(root: Path, classes: dict[str, int], start_seed: int = 0, size: int = 32) -> Path:
    """``<root>/<class>/<i>.png`` with distinct images; returns root."""
    seed = start_seed
    for label, count in classes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            save(pattern(seed, size), root / label / f"{label}_{i:03d}.png")
            seed += 1
    return root


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def huge_header_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small PNG whose header claims a huge size (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


BAD_FILES = {
    # name: (writer, expected problem code)
    "corrupt.png": "corrupt",
    "truncated.jpg": "truncated",
    "empty.png": "zero_byte",
    "text.jpg": "not_an_image",
    "one_pixel.png": "too_small",
    "huge.png": "decompression_bomb",
    "scan.tiff": "unsupported_format",
}


def write_bad_file(path: Path, kind: str, seed: int = 999) -> Path:
    """Write one of the BAD_FILES kinds at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    if kind == "corrupt.png":
        data = bytearray(png_bytes(image))
        middle = len(data) // 2
        data[middle:middle + 64] = b"\x00" * 64  # inside IDAT: breaks its CRC and the stream
        path.write_bytes(bytes(data))
    elif kind == "truncated.jpg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "empty.png":
        path.write_bytes(b"")
    elif kind == "text.jpg":
        path.write_text("this is not an image\n")
    elif kind == "one_pixel.png":
        Image.new("RGB", (1, 1), (255, 0, 0)).save(path)
    elif kind == "huge.png":
        path.write_bytes(huge_header_png())
    elif kind == "scan.tiff":
        image.save(path, format="TIFF")
    else:
        raise ValueError(kind)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three balanced classes of 12 distinct 32x32 RGB images."""
    return make_folder(tmp_path / "images", {"cat": 12, "dog": 12, "fox": 12})


def snakemake_command() -> list[str]:
    """The snakemake of the running interpreter's environment."""
    exe = Path(sys.executable).with_name("snakemake")
    return [str(exe)] if exe.exists() else [shutil.which("snakemake") or "snakemake"]


def run_snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real Snakefile in ``workdir``."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.run(
        [*snakemake_command(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--cores", "2", *args],
        capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    """Three classes of 16 tiny images, validated and split: the fold-0 manifests."""
    from imgclf.config import validate_config
    from imgclf.data import validate_source
    from imgclf.io import write_csv
    from imgclf.split import SplitOptions, make_split
    from imgclf.training.run import TrainingInputs

    base = tmp_path_factory.mktemp("data")
    root = make_folder(base / "images", {"a": 16, "b": 16, "c": 16})
    config = validate_config({"data": {"source": "folder", "root": str(root)},
                              "validation": {"min_images_per_class": 5}, "split": {"n_folds": 2}})
    result = validate_source(config, root)
    write_csv(base / "index.csv", result.index)
    split = make_split(result.index, SplitOptions.from_config(config))
    train, val = split.folds[0]
    write_csv(base / "train.csv", train)
    write_csv(base / "val.csv", val)
    return TrainingInputs(base / "index.csv", base / "train.csv", base / "val.csv", root)
