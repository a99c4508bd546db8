"""The bias audit (PRACTICES.md section 5): pure functions on tables.

Before training, on the manifests: how each group column relates to the label
(chi-square test and Cramér's V: a spurious-correlation risk) and how each
group is represented in each set. After the test evaluation, on the
predictions: per-group metrics (fairlearn's MetricFrame), the gap and ratio
between the best and the worst group with bootstrap intervals, groups too
small to judge flagged rather than judged.

Group columns come from the metadata; numeric ones are binned. Every data set
also gets slices computed from the images (brightness, contrast, sharpness,
size and aspect ratio, from the index), so that an audit exists without
metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from imgclf.errors import ConfigError

#: Slices computed from the index's image statistics: column -> how it is cut.
IMAGE_SLICES = ("brightness", "contrast", "sharpness", "size", "aspect_ratio")
MISSING = "(missing)"


def bin_numeric(values: pd.Series, edges: list[float] | int) -> pd.Series:
    """Numeric values as labelled bins: explicit edges, or that many quantile bins.

    Missing values become ``(missing)``, a group of their own.
    """
    numbers = pd.to_numeric(values, errors="coerce")
    if isinstance(edges, int):
        valid = numbers.dropna()
        if valid.nunique() <= edges:
            binned = numbers.map(lambda v: f"{v:g}" if pd.notna(v) else None)
            return binned.fillna(MISSING).astype(str)
        cuts = np.unique(np.quantile(valid, np.linspace(0, 1, edges + 1)))
        edges = cuts.tolist()
    labels = [f"[{low:g}, {high:g})" for low, high in zip(edges[:-1], edges[1:])]
    labels[-1] = labels[-1][:-1] + "]"
    binned = pd.cut(numbers, bins=edges, labels=labels, include_lowest=True, right=False)
    # The last bin is closed on the right: its upper edge belongs to it.
    binned = binned.astype(object)
    binned[numbers == edges[-1]] = labels[-1]
    return binned.where(binned.notna(), MISSING).astype(str)


def image_slices(index: pd.DataFrame, reference: pd.DataFrame | None = None, n_bins: int = 3) -> pd.DataFrame:
    """Slices of the images by their own statistics: low/mid/high tertiles and orientation.

    Args:
        index: Rows with ``brightness``, ``contrast``, ``sharpness``, ``width``, ``height``.
        reference: Where the tertile edges are taken (the training images, so that
            the test slices mean the same as in training); ``index`` itself if None.
        n_bins: Quantile bins per statistic.

    Returns:
        One column per slice, ``image:<name>``, indexed like ``index``.
    """
    reference = index if reference is None else reference
    result = pd.DataFrame(index=index.index)
    names = {2: ["low", "high"], 3: ["low", "mid", "high"]}.get(n_bins, [f"q{i + 1}" for i in range(n_bins)])
    ref_size = reference["width"].astype(float) * reference["height"].astype(float)
    size = index["width"].astype(float) * index["height"].astype(float)
    for name, values, ref_values in (
            ("brightness", index["brightness"], reference["brightness"]),
            ("contrast", index["contrast"], reference["contrast"]),
            ("sharpness", index["sharpness"], reference["sharpness"]),
            ("size", size, ref_size)):
        values, ref_values = values.astype(float), ref_values.astype(float).dropna()
        inner = np.quantile(ref_values, np.linspace(0, 1, n_bins + 1)[1:-1]) if len(ref_values) else []
        codes = np.searchsorted(np.asarray(inner), values.to_numpy(), side="right")
        column = pd.Series([names[c] for c in codes], index=index.index)
        result[f"image:{name}"] = column.where(values.notna(), MISSING)
    ratio = index["width"].astype(float) / index["height"].astype(float)
    result["image:aspect_ratio"] = np.select([ratio < 0.9, ratio > 1.1], ["portrait", "landscape"], "square")
    return result


def group_table(index: pd.DataFrame, columns: list[str], numeric_bins: dict[str, Any], default_bins: int,
                image: bool, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The audit's group columns for each image of ``index``: metadata columns (numeric
    ones binned) then image slices; ``path`` first.

    Raises:
        ConfigError: A group column that the index does not have.
    """
    missing = [c for c in columns if c not in index.columns]
    if missing:
        available = [c for c in index.columns if c not in IMAGE_SLICES]
        raise ConfigError(f"audit.group_columns names {missing}, which the index does not have "
                          f"(its columns: {', '.join(available)})",
                          "name metadata columns listed in data.group_columns")
    table = pd.DataFrame({"path": index["path"]})
    for column in columns:
        values = index[column]
        numeric = pd.to_numeric(values, errors="coerce")
        is_numeric = numeric.notna().sum() > 0 and numeric.notna().sum() == values.notna().sum()
        if column in numeric_bins or (is_numeric and numeric.nunique() > default_bins):
            table[column] = bin_numeric(values, numeric_bins.get(column, default_bins))
        else:
            table[column] = values.fillna(MISSING).astype(str)
    if image:
        table = pd.concat([table, image_slices(index, reference)], axis=1)
    return table


def association(labels: pd.Series, groups: pd.Series) -> dict[str, Any]:
    """Chi-square test of independence and Cramér's V between a group column and the label.

    Returns:
        ``n``, ``levels``, ``chi2``, ``dof``, ``p_value`` and ``cramers_v`` (0: independent,
        1: the group determines the label); None figures when a side has one level.
    """
    table = pd.crosstab(groups.astype(str), labels.astype(str))
    n = int(table.to_numpy().sum())
    result: dict[str, Any] = {"n": n, "levels": int(table.shape[0]), "chi2": None, "dof": None,
                              "p_value": None, "cramers_v": None}
    if min(table.shape) < 2:
        return result
    chi2, p_value, dof, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
    result.update(chi2=float(chi2), dof=int(dof), p_value=float(p_value),
                  cramers_v=float(np.sqrt(chi2 / (n * (min(table.shape) - 1)))))
    return result


def representation(groups_by_set: dict[str, pd.Series]) -> pd.DataFrame:
    """Each group's count and share in each set (train, val...), and its share overall."""
    rows = []
    everything = pd.concat(list(groups_by_set.values()))
    overall = everything.value_counts(normalize=True)
    for name, groups in groups_by_set.items():
        counts = groups.value_counts()
        for level in sorted(overall.index, key=str):
            count = int(counts.get(level, 0))
            rows.append({"set": name, "group": level, "count": count,
                         "share": count / len(groups) if len(groups) else 0.0,
                         "share_overall": float(overall[level])})
    return pd.DataFrame(rows)


def _metric_functions(classes: list[str]) -> dict[str, Any]:
    from sklearn.metrics import balanced_accuracy_score

    def recall_of(name: str):
        def recall(y_true: Any, y_pred: Any) -> float:
            positives = np.asarray(y_true) == name
            return float((np.asarray(y_pred)[positives] == name).mean()) if positives.any() else float("nan")
        return recall

    def selection_of(name: str):
        return lambda y_true, y_pred: float((np.asarray(y_pred) == name).mean()) if len(y_pred) else float("nan")

    functions: dict[str, Any] = {
        "accuracy": lambda y_true, y_pred: float((np.asarray(y_true) == np.asarray(y_pred)).mean()),
        "balanced_accuracy": lambda y_true, y_pred: float(balanced_accuracy_score(y_true, y_pred)),
    }
    for name in classes:
        functions[f"recall:{name}"] = recall_of(name)
        functions[f"selection_rate:{name}"] = selection_of(name)
    return functions


def group_metrics(predictions: pd.DataFrame, groups: pd.Series, classes: list[str], min_group_size: int,
                  n_boot: int = 200, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Per-group test metrics of one model, and the gap between its best and worst group.

    Args:
        predictions: The predictions CSV (``label``, ``predicted``), one row per test image.
        groups: Each row's group (same index).
        classes: The classes: per-class recall (one-vs-rest) and selection rate.
        min_group_size: Groups with fewer test images are listed, flagged too small to
            judge, and left out of the gaps.
        n_boot: Bootstrap resamples for the gap and ratio intervals (0: no intervals).
        confidence: Level of the intervals.
        seed: Seed of the bootstrap.

    Returns:
        ``groups`` (one dict per group: ``group``, ``n``, ``judged`` and every metric),
        ``gaps`` (per metric: ``difference`` and ``ratio`` between the best and the
        worst judged group, with ``*_low``/``*_high`` intervals, and which groups),
        ``too_small`` (groups not judged).
    """
    import warnings

    from fairlearn.metrics import MetricFrame

    functions = _metric_functions(classes)
    y_true, y_pred = predictions["label"].astype(str), predictions["predicted"].astype(str)
    groups = groups.astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced accuracy of a group holding one class
        frame = MetricFrame(metrics=functions, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    sizes = groups.value_counts()
    rows = []
    for level, values in frame.by_group.iterrows():
        n = int(sizes.get(level, 0))
        rows.append({"group": str(level), "n": n, "judged": n >= min_group_size,
                     **{k: (None if pd.isna(v) else float(v)) for k, v in values.items()}})
    judged = [r["group"] for r in rows if r["judged"]]
    result: dict[str, Any] = {"groups": rows, "too_small": [r["group"] for r in rows if not r["judged"]],
                              "gaps": {}, "min_group_size": min_group_size}
    if len(judged) < 2:
        result["note"] = (f"{len(judged)} group(s) with at least {min_group_size} test images: "
                          "no gap can be judged")
        return result
    keep = groups.isin(judged).to_numpy()
    half = (1 - confidence) / 2
    bootstrap = {"n_boot": n_boot, "ci_quantiles": [half, 1 - half], "random_state": seed} if n_boot else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = MetricFrame(metrics=functions, y_true=y_true[keep], y_pred=y_pred[keep],
                           sensitive_features=groups[keep], **bootstrap)
        difference, ratio = kept.difference(), kept.ratio()
        difference_ci = kept.difference_ci() if n_boot else None
        ratio_ci = kept.ratio_ci() if n_boot else None
    for name in functions:
        if name.startswith("selection_rate:"):
            continue  # a rate, not a performance: reported per group, not as a gap
        by_group = kept.by_group[name].astype(float)
        if by_group.isna().all():
            continue
        entry = {"difference": float(difference[name]), "ratio": float(ratio[name]),
                 "best_group": str(by_group.idxmax()), "worst_group": str(by_group.idxmin()),
                 "best": float(by_group.max()), "worst": float(by_group.min())}
        if n_boot:
            entry.update(difference_low=float(difference_ci[0][name]), difference_high=float(difference_ci[1][name]),
                         ratio_low=float(ratio_ci[0][name]), ratio_high=float(ratio_ci[1][name]))
        result["gaps"][name] = entry
    return result
