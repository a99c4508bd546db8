"""Figures of an exploration study: the objective per point, the best curves side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from imgclf.training.plots import plot_curve_columns  # noqa: E402


def plot_study(summary: dict[str, Any]) -> "Figure":
    """The objective of every point against its nuisance value, one series per scientific value.

    The best point of each series is circled; diverged points sit on the axis as crosses.
    """
    objective = summary["objective"]
    rows = pd.DataFrame(summary["rows"])
    scientific = summary["scientific"]
    nuisance = summary["nuisance"][0] if summary["nuisance"] else None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    # Labels, not the values, group the points: a value may be a list (an input size, filters).
    labels = rows[scientific].apply(lambda r: ", ".join(f"{k.split('.')[-1]}={r[k]}" for k in scientific), axis=1)
    for label, group in rows.groupby(labels, sort=False):
        x = group[nuisance] if nuisance else range(len(group))
        ok = group[objective].notna()
        line, = ax.plot(pd.Series(list(x))[ok.to_numpy()], group.loc[ok, objective], "o", label=label)
        if (~ok).any():
            bottom = rows[objective].min() if rows[objective].notna().any() else 0
            ax.plot(pd.Series(list(x))[(~ok).to_numpy()], [bottom] * int((~ok).sum()), "x",
                    color=line.get_color(), ms=9, label=f"{label} (diverged)")
    for best in summary["best"]:
        if best["point"] is not None:
            row = rows.loc[rows["point"] == best["point"]].iloc[0]
            ax.plot(row[nuisance] if nuisance else 0, row[objective], "o", ms=14, mfc="none", mec="k")
    if nuisance and all(isinstance(v, (int, float)) for v in rows[nuisance].dropna()) \
            and rows[nuisance].dropna().gt(0).all() and rows[nuisance].max() / rows[nuisance].min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel(nuisance or "point")
    ax.set_ylabel(f"{objective} (best epoch)")
    ax.set_title(f"{summary['study']}: {summary['question']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.set_dpi(100)
    return fig


def plot_best_curves(summary: dict[str, Any], histories: dict[str, pd.DataFrame]) -> "Figure":
    """Training curves of the best point of each scientific value, side by side."""
    columns = []
    for entry in (b for b in summary["best"] if b["point"] is not None):
        title = ", ".join(f"{k.split('.')[-1]}={entry[k]}" for k in summary["scientific"])
        nuisance = ", ".join(f"{k.split('.')[-1]}={entry[k]:.3g}" if isinstance(entry[k], float)
                             else f"{k.split('.')[-1]}={entry[k]}" for k in summary["nuisance"])
        columns.append((f"{title}\n{nuisance} ({entry['point']})", histories[entry["point"]]))
    return plot_curve_columns(columns)
