"""Simple statistics of an image's pixels, computed once during validation.

Brightness, contrast and sharpness go into the index: the bias audit slices
the test predictions by them when the data has no metadata, and drift
monitoring compares a new batch's distributions with the training data's.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Longest side the statistics are computed at: sharpness depends on scale, so
#: every image is brought to the same bound first (smaller ones are left as they are).
STATS_SIDE = 256
STAT_FIELDS = ("brightness", "contrast", "sharpness")


def gray_unit(image: Image.Image) -> np.ndarray:
    """The image in grayscale, as float32 in [0, 1], at most STATS_SIDE on its longest side."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        gray = Image.fromarray(np.clip(values / top, 0, 1).astype(np.float32), mode="F")
    else:
        gray = image.convert("L") if image.mode != "L" else image
    scale = STATS_SIDE / max(gray.width, gray.height)
    if scale < 1:
        gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))),
                           Image.Resampling.BILINEAR)
    pixels = np.asarray(gray, dtype=np.float32)
    return pixels if gray.mode == "F" else pixels / 255.0


def image_statistics(image: Image.Image) -> dict[str, float]:
    """Brightness (mean gray level), contrast (its standard deviation) and sharpness.

    Sharpness is the variance of the 4-neighbour Laplacian of the gray levels in
    [0, 1]: blur lowers it. All three are rounded to 6 decimals.
    """
    gray = gray_unit(image)
    if min(gray.shape) >= 3:
        laplacian = (gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
                     - 4 * gray[1:-1, 1:-1])
        sharpness = float(laplacian.var())
    else:
        sharpness = 0.0
    return {"brightness": round(float(gray.mean()), 6), "contrast": round(float(gray.std()), 6),
            "sharpness": round(sharpness, 6)}
