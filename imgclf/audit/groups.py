"""The bias audit (docs/practices.md section 5): pure functions on tables.

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

from imgclf.core.errors import ConfigError, ImgclfError

#: Slices computed from the index's image statistics: column -> how it is cut.
IMAGE_SLICES = ("brightness", "contrast", "sharpness", "size", "aspect_ratio")
MISSING = "(missing)"
OUT_OF_RANGE = "(out of range)"


def bin_numeric(values: pd.Series, edges: list[float] | int) -> pd.Series:
    """Numeric values as labelled bins: explicit edges, or that many quantile bins.

    Missing values become ``(missing)``, values outside explicit edges ``(out of range)``:
    groups of their own.
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
    binned[numbers.notna() & ((numbers < edges[0]) | (numbers > edges[-1]))] = OUT_OF_RANGE
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
    if image and not {"brightness", "contrast", "sharpness"} <= set(index.columns):
        raise ConfigError("the index has no image statistics (brightness, contrast, sharpness): it was made "
                          "by an older version of imgclf",
                          "rerun validation: snakemake --forcerun validate_data")
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


def _bootstrap_group_values(y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray, n_groups: int,
                            n_classes: int, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Per-group accuracy, balanced accuracy and per-class recall on ``n_boot`` resamples of the rows.

    The same definitions as :func:`_metric_functions`, computed with counts for every
    resample at once (fairlearn's own bootstrap recomputes each metric in Python for
    each resample: 150 s for the default run's 5 models instead of well under 1 s).

    Returns:
        ``accuracy`` and ``balanced_accuracy`` of shape (n_boot, n_groups), ``recall``
        of shape (n_boot, n_groups, n_classes); NaN where a resample has no such image.
    """
    rng = np.random.default_rng(seed)
    n = len(y_true)
    rows = rng.integers(0, n, size=(n_boot, n))
    correct = (y_true == y_pred).astype(np.float64)
    cell = (np.arange(n_boot)[:, None] * n_groups + codes[rows]) * n_classes + y_true[rows]
    size = n_boot * n_groups * n_classes
    support = np.bincount(cell.ravel(), minlength=size).reshape(n_boot, n_groups, n_classes).astype(np.float64)
    hits = np.bincount(cell.ravel(), weights=correct[rows].ravel(), minlength=size).reshape(support.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / support
        accuracy = hits.sum(axis=2) / support.sum(axis=2)
        present = support > 0
        balanced = np.where(present, recall, 0.0).sum(axis=2) / present.sum(axis=2)
    return {"accuracy": accuracy, "balanced_accuracy": balanced, "recall": recall}


def group_metrics(predictions: pd.DataFrame, groups: pd.Series, classes: list[str], min_group_size: int,
                  n_boot: int = 200, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Per-group test metrics of one model, and the gap between its best and worst group.

    Args:
        predictions: The predictions CSV (``label``, ``predicted``), one row per test image.
        groups: Each row's group (same index).
        classes: The classes: per-class recall (one-vs-rest) and selection rate.
        min_group_size: Groups with fewer test images are listed, flagged too small to
            judge, and left out of the gaps.
        n_boot: Bootstrap resamples of the test rows for the intervals (0: no intervals).
        confidence: Level of the intervals.
        seed: Seed of the bootstrap.

    Returns:
        ``groups`` (one dict per group: ``group``, ``n``, ``judged``, every metric, and for
        the performance metrics ``<metric>_low``/``<metric>_high`` bootstrap intervals),
        ``gaps`` (per performance metric: ``difference`` (best minus worst) and ``ratio``
        (worst over best) between the judged groups, with ``*_low``/``*_high`` intervals,
        and which groups), ``too_small`` (groups not judged).
    """
    import warnings

    from fairlearn.metrics import MetricFrame

    functions = _metric_functions(classes)
    y_true, y_pred = predictions["label"].astype(str), predictions["predicted"].astype(str)
    groups = groups.astype(str).reset_index(drop=True)
    y_true, y_pred = y_true.reset_index(drop=True), y_pred.reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced accuracy of a group holding one class
        frame = MetricFrame(metrics=functions, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    sizes = groups.value_counts()
    rows = []
    for level, values in frame.by_group.iterrows():
        n = int(sizes.get(level, 0))
        rows.append({"group": str(level), "n": n, "judged": n >= min_group_size,
                     **{k: (None if pd.isna(v) else float(v)) for k, v in values.items()}})
    performance = [name for name in functions if not name.startswith("selection_rate:")]
    boot: dict[str, np.ndarray] = {}
    half = (1 - confidence) / 2
    if n_boot:
        levels = [r["group"] for r in rows]
        codes = pd.Categorical(groups, categories=levels).codes.astype(np.int64)
        class_index = {name: i for i, name in enumerate(classes)}
        extra = len(classes)  # labels or predictions outside ``classes`` get their own slot
        true_codes = y_true.map(lambda v: class_index.get(v, extra)).to_numpy(np.int64)
        pred_codes = y_pred.map(lambda v: class_index.get(v, extra)).to_numpy(np.int64)
        values = _bootstrap_group_values(true_codes, pred_codes, codes, len(levels), extra + 1, n_boot, seed)
        boot = {"accuracy": values["accuracy"], "balanced_accuracy": values["balanced_accuracy"],
                **{f"recall:{name}": values["recall"][:, :, i] for i, name in enumerate(classes)}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN slices: a group absent from a resample
            for g, row in enumerate(rows):
                for name in performance:
                    low, high = np.nanquantile(boot[name][:, g], [half, 1 - half]) \
                        if np.isfinite(boot[name][:, g]).any() else (np.nan, np.nan)
                    row[f"{name}_low"] = None if np.isnan(low) else float(low)
                    row[f"{name}_high"] = None if np.isnan(high) else float(high)
    judged = [r["group"] for r in rows if r["judged"]]
    result: dict[str, Any] = {"groups": rows, "too_small": [r["group"] for r in rows if not r["judged"]],
                              "gaps": {}, "min_group_size": min_group_size, "n_boot": n_boot,
                              "confidence": confidence}
    if len(judged) < 2:
        result["note"] = (f"{len(judged)} group(s) with at least {min_group_size} test images: "
                          "no gap can be judged")
        return result
    keep = groups.isin(judged).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = MetricFrame(metrics={name: functions[name] for name in performance}, y_true=y_true[keep],
                           y_pred=y_pred[keep], sensitive_features=groups[keep])
        difference, ratio = kept.difference(), kept.ratio()
    judged_columns = [i for i, r in enumerate(rows) if r["judged"]]
    for name in performance:
        by_group = kept.by_group[name].astype(float)
        if by_group.isna().all():
            continue
        entry = {"difference": float(difference[name]), "ratio": float(ratio[name]),
                 "best_group": str(by_group.idxmax()), "worst_group": str(by_group.idxmin()),
                 "best": float(by_group.max()), "worst": float(by_group.min())}
        if n_boot:
            per_group = boot[name][:, judged_columns]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                best, worst = np.nanmax(per_group, axis=1), np.nanmin(per_group, axis=1)
                gaps = best - worst
                ratios = np.where(best > 0, worst / np.where(best > 0, best, 1.0), np.nan)
                if np.isfinite(gaps).any():
                    low, high = np.nanquantile(gaps, [half, 1 - half])
                    entry.update(difference_low=float(low), difference_high=float(high))
                if np.isfinite(ratios).any():
                    low, high = np.nanquantile(ratios, [half, 1 - half])
                    entry.update(ratio_low=float(low), ratio_high=float(high))
        result["gaps"][name] = entry
    return result


def audit_columns(config: dict[str, Any], index: pd.DataFrame | None = None) -> list[str] | None:
    """The metadata columns the audit looks at: ``audit.group_columns``, else
    ``data.group_columns``, else (both null) every metadata column of the index
    (None when no index is given: known only once the metadata is read). By default the
    split's group column (a patient or lesion id) is left out: each of its groups sits in
    one set by design, and an id is not a population to compare."""
    from imgclf.data import INDEX_COLUMNS

    audit, data = config["audit"], config["data"]
    if audit["group_columns"] is not None:
        return list(audit["group_columns"])
    split_unit = config["split"]["group_column"]
    if data["group_columns"] is not None:
        return [c for c in data["group_columns"] if c != split_unit]
    if index is None:
        return None
    return [c for c in index.columns if c not in INDEX_COLUMNS and c not in ("group", split_unit)]


def _finding(severity: str, column: str, message: str) -> dict[str, str]:
    return {"severity": severity, "column": column, "message": message}


def log_findings(findings: list[dict[str, str]], log: Any, what: str, hint: str) -> None:
    """Log every finding as a warning; raise on the first error (thresholds turned into failures).

    Raises:
        ImgclfError: ``what`` failed, with the first error's message and ``hint``.
    """
    for finding in findings:
        log.warning("%s (%s): %s", finding["severity"], finding["column"], finding["message"])
    errors = [f for f in findings if f["severity"] == "error"]
    if errors:
        raise ImgclfError(f"{what} failed: {errors[0]['message']}", hint)


def audit_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What the audit's rules read of the config (their ``params``): the ``audit`` and ``data``
    sections and the split's group column (which :func:`audit_columns` leaves out). A change
    elsewhere (a target, an unseal reason) reruns no audit."""
    return {"audit": config["audit"], "data": config["data"],
            "split": {"group_column": config["split"]["group_column"]}}


def audit_group_table(index: pd.DataFrame, reference_paths: pd.Series, config: dict[str, Any]) -> pd.DataFrame:
    """Each image's group in every audited column, indexed by path: metadata columns binned,
    image slices cut at the tertiles of the reference images (a training manifest's)."""
    audit = config["audit"]
    reference = index[index["path"].isin(reference_paths)]
    return group_table(index, audit_columns(config, index), audit["numeric_bins"], audit["default_bins"],
                       audit["image_slices"], reference).set_index("path")


def audit_data(index: pd.DataFrame, sets: dict[str, pd.DataFrame], config: dict[str, Any]) -> dict[str, Any]:
    """The audit before training: association with the label and representation per set.

    Args:
        index: The index (labels, metadata, image statistics).
        sets: Manifests by set name (``train``, ``val``; ``test`` holds paths only).
        config: The validated config.

    Returns:
        ``columns`` (per group column: association on the training and validation images,
        and representation per set), ``findings`` (warnings and errors by the thresholds).
    """
    audit = config["audit"]
    labelled = pd.concat([sets[name] for name in sets if name != "test"])
    groups = audit_group_table(index, sets["train"]["path"], config)
    labels = index.set_index("path")["label"]
    result: dict[str, Any] = {"columns": {}, "findings": [], "n_labelled": int(len(labelled))}
    for column in groups.columns:
        on_labelled = groups.loc[labelled["path"], column]
        strength = association(labels.loc[labelled["path"]], on_labelled)
        shares = representation({name: groups.loc[table["path"], column].reset_index(drop=True)
                                 for name, table in sets.items()})
        result["columns"][column] = {"association": strength, "representation": shares.to_dict("records")}
        v = strength["cramers_v"]
        if v is not None:
            text = (f"{column} is associated with the label (Cramér's V {v:.2f}, p = {strength['p_value']:.2g}): "
                    "a model may learn the group instead of the disease (a spurious correlation)")
            if audit["association_failure"] is not None and v > audit["association_failure"]:
                result["findings"].append(_finding("error", column, text + f"; above audit.association_failure "
                                                   f"{audit['association_failure']}"))
            elif audit["association_warning"] is not None and v > audit["association_warning"]:
                result["findings"].append(_finding("warning", column, text))
        absent = shares[(shares["count"] == 0) & (shares["share_overall"] > 0)]
        for set_name, rows in absent.groupby("set", sort=False):
            names = [str(g) for g in rows["group"]]
            shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            what = (f"group {shown} of {column} has" if len(names) == 1
                    else f"{len(names)} groups of {column} ({shown}) have")
            result["findings"].append(_finding("warning", column, f"{what} no image in the {set_name} set"))
    return result


def audit_models(predictions: dict[int, pd.DataFrame], index: pd.DataFrame, train: pd.DataFrame,
                 classes: list[str], config: dict[str, Any]) -> dict[str, Any]:
    """The audit after the test evaluation: per-group metrics of every final model.

    Args:
        predictions: Each seed's predictions CSV.
        index: The index (metadata and image statistics of the test images).
        train: A training manifest (image-slice edges come from its images).
        classes: The classes.
        config: The validated config.

    Returns:
        ``per_seed`` (seed -> column -> :func:`group_metrics`), ``summary`` (per column:
        the gap of ``audit.gap_metric`` per seed and its mean), ``findings``.
    """
    if not predictions:
        raise ImgclfError("the bias audit has no predictions to audit", "run the test evaluation first")
    audit = config["audit"]
    confidence = config["evaluation"]["confidence"]
    table = audit_group_table(index, train["path"], config)
    metric = audit["gap_metric"]
    per_seed: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for seed, frame in sorted(predictions.items()):
        per_seed[str(seed)] = {}
        for column in table.columns:
            groups = table.loc[frame["path"], column].reset_index(drop=True)
            per_seed[str(seed)][column] = group_metrics(frame.reset_index(drop=True), groups, classes,
                                                        audit["min_group_size"], audit["bootstrap"], confidence,
                                                        seed=int(seed))
    findings = []
    for column in table.columns:
        gaps = {seed: per_seed[seed][column]["gaps"].get(metric) for seed in per_seed}
        known = {seed: g for seed, g in gaps.items() if g is not None}
        entry: dict[str, Any] = {"metric": metric, "per_seed": known,
                                 "too_small": per_seed[next(iter(per_seed))][column]["too_small"]}
        if known:
            mean_gap = float(np.mean([g["difference"] for g in known.values()]))
            worst = pd.Series([g["worst_group"] for g in known.values()]).mode()[0]
            entry.update(mean_difference=mean_gap, worst_group=worst)
            text = (f"{metric} differs by {mean_gap:.3f} between the best and the worst {column} group "
                    f"(mean over {len(known)} models; worst most often: {worst!r})")
            if audit["gap_failure"] is not None and mean_gap > audit["gap_failure"]:
                findings.append(_finding("error", column, text + f", above audit.gap_failure {audit['gap_failure']}"))
            elif audit["gap_warning"] is not None and mean_gap > audit["gap_warning"]:
                findings.append(_finding("warning", column, text))
        summary[column] = entry
    return {"per_seed": per_seed, "summary": summary, "findings": findings, "metric": metric}


def group_metrics_table(per_seed: dict[str, Any]) -> pd.DataFrame:
    """Every (seed, column, group) row of :func:`audit_models`, for a CSV."""
    rows = [{"seed": seed, "column": column, **group}
            for seed, columns in per_seed.items() for column, result in columns.items()
            for group in result["groups"]]
    return pd.DataFrame(rows)


def audit_markdown(data: dict[str, Any] | None, models: dict[str, Any] | None) -> str:
    """The audit as Markdown: findings first, then association and gaps per column."""
    lines = ["# Bias audit", ""]
    findings = (data or {}).get("findings", []) + (models or {}).get("findings", [])
    lines += ["## Findings", ""] + ([f"- **{f['severity']}** ({f['column']}): {f['message']}" for f in findings]
                                    or ["No finding above the thresholds."]) + [""]
    if data:
        lines += ["## Before training: group and label (training and validation images)", "",
                  "| column | groups | Cramér's V | p-value |", "|---|---|---|---|"]
        for column, entry in data["columns"].items():
            a = entry["association"]
            v = "n/a" if a["cramers_v"] is None else f"{a['cramers_v']:.3f}"
            p = "n/a" if a["p_value"] is None else f"{a['p_value']:.2g}"
            lines.append(f"| {column} | {a['levels']} | {v} | {p} |")
        lines.append("")
    if models:
        lines += [f"## After training: {models['metric']} gap between groups (test set)", "",
                  "| column | mean gap | worst group | groups too small to judge |", "|---|---|---|---|"]
        for column, entry in models["summary"].items():
            gap = "n/a" if "mean_difference" not in entry else f"{entry['mean_difference']:.3f}"
            lines.append(f"| {column} | {gap} | {entry.get('worst_group', 'n/a')} | "
                         f"{', '.join(entry['too_small']) or '-'} |")
    return "\n".join(lines) + "\n"


def check_audit(config: dict[str, Any], class_names: list[str] | None = None) -> None:
    """Load-time checks: audited columns must be metadata columns the index keeps; the gap
    metric must be one the audit computes.

    Args:
        config: The validated config.
        class_names: The data's classes when they can be read cheaply (None: not checked).

    Raises:
        ConfigError: Naming the key and the value.
    """
    metric = config["audit"]["gap_metric"]
    if metric not in ("accuracy", "balanced_accuracy") and not metric.startswith("recall:"):
        raise ConfigError(f"audit.gap_metric is {metric!r}, which the audit does not judge",
                          "use accuracy, balanced_accuracy or recall:<class>")
    if metric.startswith("recall:") and class_names is not None and metric[7:] not in class_names:
        raise ConfigError(f"audit.gap_metric is {metric!r}, but the data has no class {metric[7:]!r} "
                          f"(its classes: {', '.join(class_names)})", "name one of the classes after recall:")
    known = config["data"]["group_columns"]
    columns = audit_columns(config)
    if known is not None:
        for column in columns or []:
            if column not in known:
                raise ConfigError(f"audit.group_columns names {column!r}, which is not in data.group_columns "
                                  f"({', '.join(known) or 'none'})",
                                  "add it to data.group_columns (the index keeps only those metadata columns)")
    if columns is not None:
        for column in config["audit"]["numeric_bins"]:
            if column not in columns:
                raise ConfigError(f"audit.numeric_bins names {column!r}, which is not an audited column",
                                  "bin one of audit.group_columns (or data.group_columns)")
