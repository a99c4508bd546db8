"""Image grids for the report: random samples per class (docs/practices.md section 10: look at
the data with its labels), and the misclassified test images the model was surest of."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402


def _thumbnail(path: Path, size: int = 96) -> np.ndarray:
    """An image as shown to a person: EXIF orientation applied, RGB, fitted in a square."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            # 16-bit or float pixels: stretched to their own maximum for display (convert() clips them).
            values = np.asarray(image, dtype=np.float32)
            image = Image.fromarray((np.clip(values / max(float(values.max()), 1.0), 0, 1) * 255).astype(np.uint8))
        image = image.convert("RGB")
        if max(image.size) > size:
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
        elif max(image.size) < size:
            # Small images (8-32 px digits) are enlarged by a whole factor, without blurring.
            scale = max(1, size // max(image.size))
            image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        return np.asarray(image)


def sample_per_class(manifest: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """``per_class`` random rows of each class (all of a smaller class), seeded, classes sorted."""
    parts = []
    for label in sorted(manifest["label"].astype(str).unique()):
        rows = manifest[manifest["label"].astype(str) == label]
        parts.append(rows.sample(n=min(per_class, len(rows)), random_state=seed))
    return pd.concat(parts, ignore_index=True) if parts else manifest.head(0)


def plot_class_samples(samples: pd.DataFrame, data_root: str | Path, per_class: int) -> "Figure":
    """One row per class, ``per_class`` images each, the label on the left."""
    classes = list(dict.fromkeys(samples["label"].astype(str)))
    rows, cols = max(1, len(classes)), max(1, per_class)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols + 0.8, 1.1 * rows + 0.4), squeeze=False)
    for r, label in enumerate(classes):
        part = samples[samples["label"].astype(str) == label]
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(part):
                ax.imshow(_thumbnail(Path(data_root) / part.iloc[c]["path"]))
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("Random training images per class, with their labels", fontsize=10)
    fig.tight_layout()
    fig.set_dpi(90)
    return fig


def confident_mistakes(predictions: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` misclassified rows with the highest confidence (ties by path, for stable output)."""
    wrong = predictions[predictions["label"].astype(str) != predictions["predicted"].astype(str)]
    return wrong.sort_values(["confidence", "path"], ascending=[False, True]).head(n).reset_index(drop=True)


def plot_mistakes(mistakes: pd.DataFrame, data_root: str | Path, title: str) -> "Figure":
    """The mistakes in a grid: true and predicted class, and the confidence, under each image."""
    n = len(mistakes)
    cols = min(6, max(n, 1))
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.9 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if i < n:
            row = mistakes.iloc[i]
            ax.imshow(_thumbnail(Path(data_root) / row["path"]))
            ax.set_xlabel(f"true {row['label']}\npredicted {row['predicted']} ({row['confidence']:.2f})", fontsize=7)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no misclassified test image", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.set_dpi(90)
    return fig
