"""Figures of a tuning search: objective per trial, hyperparameters vs objective, top curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from imgclf.core.objectives import direction  # noqa: E402
from imgclf.training.plots import plot_curve_columns  # noqa: E402


def _higher_is_better(objective: str) -> bool:
    return direction(objective) == "max"


def plot_objective_per_trial(table: pd.DataFrame, objective: str) -> "Figure":
    """Each trial's objective, in order, with the best so far."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    order = np.arange(1, len(table) + 1)
    values = table[objective].astype(float).to_numpy()
    ax.plot(order, values, "o", label="trial")
    running = (np.fmax.accumulate if _higher_is_better(objective) else np.fmin.accumulate)(
        np.where(np.isnan(values), -np.inf if _higher_is_better(objective) else np.inf, values))
    ax.step(order, running, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.set_dpi(100)
    return fig


def plot_hyperparameters(table: pd.DataFrame, names: list[str], objective: str) -> "Figure":
    """One scatter per hyperparameter: its value against the objective (log axis for wide ranges)."""
    n = max(len(names), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        column = table[name]
        ok = column.notna() & table[objective].notna()
        x = column[ok]
        if x.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all() and len(x):
            ax.scatter(x.astype(float), table.loc[ok, objective], c=np.arange(ok.sum()), cmap="viridis")
            positive = x.astype(float)
            if (positive > 0).all() and positive.max() / max(positive.min(), 1e-300) > 20:
                ax.set_xscale("log")
        else:
            labels = sorted(x.astype(str).unique())
            ax.scatter([labels.index(v) for v in x.astype(str)], table.loc[ok, objective])
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel(objective, fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("hyperparameters vs objective (colour: trial order)", fontsize=9)
    fig.tight_layout()
    fig.set_dpi(100)
    return fig


def plot_top_curves(table: pd.DataFrame, histories: dict[str, pd.DataFrame], objective: str, top: int = 3) -> "Figure":
    """Training curves of the best ``top`` trials."""
    ranked = table.dropna(subset=[objective]).sort_values(objective, ascending=not _higher_is_better(objective))
    chosen = [t for t in ranked["trial"] if t in histories][:top]
    columns = []
    for trial in chosen:
        value = float(ranked.loc[ranked["trial"] == trial, objective].iloc[0])
        columns.append((f"trial {trial}: {objective} {value:.4f}", histories[trial]))
    return plot_curve_columns(columns)
