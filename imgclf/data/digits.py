"""The embedded default data: scikit-learn's handwritten digits as PNG files.

1,797 real 8x8 grayscale digits (16 grey levels), shipped inside scikit-learn,
so the default pipeline needs no download. They are written as an ordinary
image folder so that they take the same path through the pipeline as a user's
images.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def digit_images(size: int) -> Iterator[tuple[str, Image.Image]]:
    """Yield ``(relative path, image)`` for every digit, upsampled to ``size``.

    Args:
        size: Side of the square output images in pixels (bicubic upsampling
            from 8x8; 8 keeps the originals).

    Yields:
        Paths ``<digit>/<digit>_<number>.png`` and grayscale ("L") images.
    """
    digits = load_digits()
    for number, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        grey = np.clip(np.rint(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, mode="L")
        if size != grey.shape[0]:
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        yield f"{target}/{target}_{number:04d}.png", image


def write_digit_folder(folder: str | Path, size: int) -> int:
    """Write every digit as ``<folder>/<digit>/<digit>_<number>.png``, whole or not at all.

    The images are written to a staging folder beside ``folder``, which then replaces it.

    Args:
        folder: The image folder (the export_digits rule's output).
        size: Side of the images in pixels.

    Returns:
        How many images were written.
    """
    out = Path(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".digits.", dir=out.parent))
    count = 0
    for relpath, image in digit_images(size):
        target = staging / relpath
        target.parent.mkdir(exist_ok=True)
        image.save(target, format="PNG", optimize=False)
        count += 1
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    return count
