"""Figures for every run, as PNG files: training curves and weight histograms."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_curves(history: pd.DataFrame, title: str = "") -> "Figure":
    """Loss and accuracy, train vs validation, with learning-rate reductions and phases marked."""
    metrics = [m for m in ("loss", "accuracy") if m in history.columns]
    fig, axes = plt.subplots(1, len(metrics) or 1, figsize=(5.5 * max(len(metrics), 1), 3.8), squeeze=False)
    epochs = history["epoch"] if "epoch" in history else pd.Series(range(1, len(history) + 1))
    lr = history.get("learning_rate")
    reductions = []
    if lr is not None and len(lr) > 1:
        reductions = [int(e) for e, prev, cur in zip(epochs[1:], lr[:-1], lr[1:]) if cur < prev * 0.999]
    phase_starts = []
    if "phase" in history:
        phase_starts = [int(e) for e, prev, cur in zip(epochs[1:], history["phase"][:-1], history["phase"][1:])
                        if cur != prev]
    for ax, metric in zip(axes[0], metrics):
        ax.plot(epochs, history[metric], "o-", ms=3, label=f"train {metric}")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "s-", ms=3, label=f"validation {metric}")
        for i, e in enumerate(reductions):
            ax.axvline(e - 0.5, color="tab:red", ls=":", lw=1, label="learning rate reduced" if i == 0 else None)
        for i, e in enumerate(phase_starts):
            ax.axvline(e - 0.5, color="k", ls="--", lw=1, label="fine-tuning starts" if i == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.set_dpi(100)
    return fig


def plot_curve_columns(columns: list[tuple[str, pd.DataFrame]]) -> "Figure":
    """Several runs side by side: one column per run, loss above accuracy, train vs validation.

    Args:
        columns: (title, history) per run; a history has ``epoch``, ``loss``,
            ``accuracy`` and their ``val_`` counterparts.
    """
    n = max(len(columns), 1)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6), squeeze=False)
    for col, (title, history) in enumerate(columns):
        for row, metric in enumerate(("loss", "accuracy")):
            ax = axes[row][col]
            for prefix, label, marker in (("", "train", "o-"), ("val_", "validation", "s-")):
                if prefix + metric in history:
                    ax.plot(history["epoch"], history[prefix + metric], marker, ms=3, label=label)
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            if row == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.set_dpi(100)
    return fig


def load_weight_samples(path: str | Path) -> tuple[dict[str, dict[int, np.ndarray]], list[dict]]:
    """Weight samples per ``layer/kernel|bias`` and epoch, and the change records."""
    samples: dict[str, dict[int, np.ndarray]] = {}
    with np.load(path) as arrays:
        changes = json.loads(str(arrays["changes"])) if "changes" in arrays.files else []
        for key in arrays.files:
            if key == "changes":
                continue
            layer, kind, epoch = key.split("|")
            samples.setdefault(f"{layer}/{kind}", {})[int(epoch)] = arrays[key]
    return samples, changes


def plot_weight_histograms(weight_samples: str | Path, title: str = "") -> "Figure":
    """Per-layer weight histograms over epochs (one panel per layer and kind).

    Each panel stacks the histogram of every epoch, from the initial weights
    (light) to the last epoch (dark), on a common range: layers that barely
    move show overlapping curves, layers that learn show them shift or widen,
    and exploding updates show a blown-up range.
    """
    samples, _ = load_weight_samples(weight_samples)
    keys = list(samples)
    n = len(keys)
    cols = min(4, max(n, 1))
    rows = int(np.ceil(n / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, key in zip(axes.ravel(), keys):
        by_epoch = samples[key]
        epochs = sorted(by_epoch)
        values = np.concatenate([by_epoch[e] for e in epochs])
        finite = values[np.isfinite(values)]
        low, high = (np.percentile(finite, [0.5, 99.5]) if finite.size else (-1.0, 1.0))
        if high <= low:
            low, high = low - 1e-3, high + 1e-3
        bins = np.linspace(low, high, 41)
        constant = []
        for i, epoch in enumerate(epochs):
            values_e = by_epoch[epoch]
            if values_e.size and np.ptp(values_e) == 0:
                constant.append(f"epoch {epoch}: all {values_e[0]:g}")
                continue  # a spike (e.g. zero-initialised biases) would flatten the others
            counts, _ = np.histogram(values_e, bins=bins, density=True)
            ax.plot(0.5 * (bins[1:] + bins[:-1]), counts, color=cmap(i / max(len(epochs) - 1, 1)), lw=1)
        ax.set_title(key + (f"\n({'; '.join(constant[:2])})" if constant else ""), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, max(max((max(s) for s in samples.values()), default=1), 1)))
    fig.colorbar(sm, ax=axes.ravel().tolist(), label="epoch (0 = initial)", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.set_dpi(100)
    return fig
