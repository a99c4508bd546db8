"""Figure of the bias audit: the judged metric per group, per audited column, with intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Image slices are ordered as they read, not alphabetically.
SLICE_ORDER = {"low": 0, "mid": 1, "high": 2, "portrait": 0, "square": 1, "landscape": 2}


def _group_order(groups: pd.Series) -> list[str]:
    return sorted(groups.unique(), key=lambda g: (SLICE_ORDER.get(g, 3), g))


def plot_group_metrics(table: pd.DataFrame, metric: str) -> "Figure":
    """Per column with two groups or more: each group's metric (bar: mean over the final
    models; error bar: the mean of their bootstrap intervals; dots: each model), groups
    too small to judge in grey, the group size under each name."""
    columns = [c for c in dict.fromkeys(table["column"]) if table.loc[table["column"] == c, "group"].nunique() > 1] \
        if not table.empty else []
    n = max(1, len(columns))
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n + 0.6), squeeze=False)
    if not columns:
        axes[0, 0].text(0.5, 0.5, "no column with two groups or more", ha="center", va="center")
        axes[0, 0].set_axis_off()
    low, high = f"{metric}_low", f"{metric}_high"
    for ax, column in zip(axes[:, 0], columns):
        part = table[table["column"] == column]
        order = _group_order(part["group"])
        x = np.arange(len(order))
        for i, group in enumerate(order):
            rows = part[part["group"] == group]
            values = pd.to_numeric(rows[metric], errors="coerce")
            judged = bool(rows["judged"].iloc[0])
            mean = float(values.mean()) if values.notna().any() else 0.0
            ax.bar(i, mean, color="C0" if judged else "0.75", width=0.6)
            if low in rows and rows[low].notna().any():
                lo, hi = float(rows[low].mean()), float(rows[high].mean())
                ax.errorbar(i, mean, yerr=[[max(mean - lo, 0)], [max(hi - mean, 0)]], fmt="none", ecolor="black",
                            capsize=4)
            ax.plot(np.full(len(values), i) + np.linspace(-0.12, 0.12, len(values)), values, "o", color="C1",
                    markersize=3)
        sizes = part.groupby("group")["n"].first()
        ax.set_xticks(x, [f"{g}\n(n={sizes[g]})" for g in order], fontsize=7)
        ax.set_ylabel(metric, fontsize=8)
        ax.set_title(column, fontsize=9)
        ax.set_ylim(0, 1.05)
    fig.suptitle(f"{metric} per group on the test set: mean over the final models (bar),\n"
                 "bootstrap interval (black), each model (dots); grey: too small to judge", fontsize=8)
    fig.tight_layout()
    fig.set_dpi(100)
    return fig
