"""Figure of a drift report: the batch's distributions over the reference's."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _histograms(ax: Any, reference: np.ndarray, batch: np.ndarray, title: str) -> None:
    values = np.concatenate([reference, batch])
    bins = np.histogram_bin_edges(values[np.isfinite(values)], bins=30) if np.isfinite(values).any() else 10
    ax.hist(reference, bins=bins, density=True, alpha=0.5, label="reference", color="tab:blue")
    ax.hist(batch, bins=bins, density=True, alpha=0.5, label="batch", color="tab:orange")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def plot_drift(reference_images: pd.DataFrame, batch_images: pd.DataFrame, reference_predictions: pd.DataFrame,
               batch_predictions: pd.DataFrame, report: dict[str, Any]) -> "Figure":
    """Brightness, contrast, sharpness, confidence (reference against batch, densities) and the
    predicted-class mix; each panel's title carries its adjusted p-value."""
    tests = report["signals"]["images"]["tests"]
    predictions = report["signals"]["predictions"]
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.1))
    for ax, column in zip(axes[:3], ("brightness", "contrast", "sharpness")):
        p = tests.get(column, {}).get("p_adjusted")
        _histograms(ax, reference_images[column].to_numpy(float), batch_images[column].to_numpy(float),
                    f"{column} (p = {p:.2g})" if p is not None else column)
    _histograms(axes[3], reference_predictions["confidence"].to_numpy(float),
                batch_predictions["confidence"].to_numpy(float),
                f"confidence (p = {predictions['confidence']['p_adjusted']:.2g})")
    axes[3].set_xlabel("validation images = reference", fontsize=7)
    mix = predictions["class_mix"]
    classes = list(mix["reference_share"])
    x = np.arange(len(classes))
    axes[4].bar(x - 0.2, [mix["reference_share"][c] for c in classes], 0.4, label="reference", color="tab:blue",
                alpha=0.7)
    axes[4].bar(x + 0.2, [mix["batch_share"][c] for c in classes], 0.4, label="batch", color="tab:orange", alpha=0.7)
    axes[4].set_xticks(x, classes, fontsize=7, rotation=90 if len(classes) > 12 else 0)
    axes[4].set_title(f"predicted classes (p = {mix['p_adjusted']:.2g})", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{report['recommendation']['action']} (drift: {', '.join(report['drifting']) or 'none'})",
                 fontsize=10)
    fig.tight_layout()
    fig.set_dpi(90)
    return fig
