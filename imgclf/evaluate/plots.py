"""Figures of the test evaluation: confusion matrices and metrics over seeds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion_matrix(matrix: list[list[int]] | np.ndarray, class_names: list[str], title: str) -> "Figure":
    """Counts and row-normalised rates (recall on the diagonal), side by side."""
    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(class_names)
    size = max(4.0, 0.45 * n + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, values, name, fmt in ((axes[0], counts, "counts", "{:.0f}"), (axes[1], rates, "normalised by true class", "{:.2f}")):
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=values.max() if name == "counts" else 1)
        ax.set_title(name)
        ax.set_xticks(range(n), class_names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
        ax.set_yticks(range(n), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 20:
            threshold = values.max() / 2 if values.max() else 0.5
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if values[i, j] > threshold else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title)
    fig.tight_layout()
    fig.set_dpi(100)
    return fig


def plot_metrics_over_seeds(aggregate: dict[str, Any], names: list[str], targets: list[dict[str, Any]]) -> "Figure":
    """Each seed's value, the mean and its interval, and the target bounds, per metric."""
    names = [n for n in names if n in aggregate]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 2), 4))
    target_labelled = False
    for x, name in enumerate(names):
        entry = aggregate[name]
        values = [v for v in entry["values"].values() if v is not None]
        ax.plot([x] * len(values), values, "o", color="0.6", markersize=4,
                label="one seed" if x == 0 else None)
        if entry["low"] is not None:
            ax.errorbar([x + 0.15], [entry["mean"]], yerr=[[entry["mean"] - entry["low"]],
                                                         [entry["high"] - entry["mean"]]],
                        fmt="s", color="C0", capsize=4, label="mean and interval" if x == 0 else None)
        else:
            ax.plot([x + 0.15], [entry["mean"]], "s", color="C0")
        for target in targets:
            if target["metric_name"] == name:
                for bound in ("min", "max"):
                    if target.get(bound) is not None:
                        ax.hlines(target[bound], x - 0.3, x + 0.45, colors="C3", linestyles="--",
                                  label=None if target_labelled else "target")
                        target_labelled = True
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_title("test metrics over the final models")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.set_dpi(100)
    return fig


def plot_saliency_gallery(picks: Any, overlays: list[np.ndarray], classes: list[str], per_class: int,
                          title: str) -> "Figure":
    """The saliency grid: one row per class, its most confident correct predictions then its most
    confident mistakes, each image with its Grad-CAM heat map blended over it.

    Args:
        picks: :func:`imgclf.evaluate.saliency.gallery_picks`' rows (label, predicted, confidence,
            kind) with ``border_share``, in the order of ``overlays``.
        overlays: The blended images (uint8 RGB), one per row of ``picks``.
        classes: The rows' classes. per_class: Images of each kind per class (the grid's columns).
        title: The figure's title.
    """
    columns = 2 * max(per_class, 1)
    fig, axes = plt.subplots(len(classes), columns, figsize=(1.6 * columns, 1.75 * len(classes) + 0.6),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for (_, row), image in zip(picks.iterrows(), overlays):
        r = classes.index(str(row["label"]))
        kind_rows = picks[(picks["label"].astype(str) == str(row["label"])) & (picks["kind"] == row["kind"])]
        c = list(kind_rows.index).index(row.name) + (per_class if row["kind"] == "mistake" else 0)
        ax = axes[r, c]
        ax.imshow(image)
        verdict = "ok" if row["kind"] == "correct" else f"-> {row['predicted']}"
        ax.set_title(f"{row['label']} {verdict}\np {row['confidence']:.2f}, border {row['border_share']:.0%}",
                     fontsize=7, color="black" if row["kind"] == "correct" else "firebrick")
    for r, name in enumerate(classes):
        axes[r, 0].text(-0.08, 0.5, name, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
