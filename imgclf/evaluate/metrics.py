"""Test-set metrics, their aggregation over seeds, and the user's targets.

Pure functions on labels and predicted probabilities: the evaluation rule
reads the sealed test manifest, predicts, and calls these; the summary rule
aggregates the seeds' metrics and checks the user's targets.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from imgclf.core.errors import ConfigError
from imgclf.evaluate.agreement import agreed_errors_markdown
from imgclf.core.objectives import direction

#: Metrics a target can name; per-class ones need a class.
GLOBAL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "ece")
PER_CLASS_METRICS = ("precision", "recall", "sensitivity", "specificity", "f1", "roc_auc")
LOWER_IS_BETTER = ("log_loss", "ece")


def flatten_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics under dotted names: ``accuracy``, ``per_class.<class>.recall``..."""
    flat = {k: float(v) for k, v in metrics.items() if k in GLOBAL_METRICS}
    # Test-time augmentation's figures, beside the plain ones (evaluation.tta).
    flat.update({f"tta.{k}": float(v) for k, v in (metrics.get("tta") or {}).items() if k in GLOBAL_METRICS})
    for name, values in metrics["per_class"].items():
        for key, value in values.items():
            if key != "support" and value is not None:
                flat[f"per_class.{name}.{key}"] = float(value)
    return flat


def mean_interval(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation and a Student-t confidence interval of the mean.

    With one value the interval is undefined (None): one seed proves nothing.
    """
    array = np.asarray(values, dtype=float)
    n = len(array)
    mean = float(array.mean()) if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "low": None, "high": None, "confidence": confidence}
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half,
            "confidence": confidence}


def aggregate_over_seeds(per_seed: dict[int, dict[str, Any]], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, std and interval of every scalar metric over the seeds' models.

    Intervals are clipped to the metrics' range ([0, 1], the log loss [0, inf)): a
    t-interval over a few seeds can reach past 1, which no model can.
    """
    flat = {seed: flatten_metrics(m) for seed, m in per_seed.items()}
    names = sorted(set().union(*(f.keys() for f in flat.values()))) if flat else []
    result = {}
    for name in names:
        summary = mean_interval([f[name] for f in flat.values() if name in f], confidence)
        if summary["low"] is not None:  # every metric is >= 0; all but the log loss <= 1
            summary["low"] = max(summary["low"], 0.0)
            if not name.endswith("log_loss"):
                summary["high"] = min(summary["high"], 1.0)
        result[name] = {**summary, "values": {str(seed): f.get(name) for seed, f in flat.items()}}
    return result


def target_metric_name(target: dict[str, Any]) -> str:
    """The dotted metric name a target refers to."""
    metric = target["metric"]
    return f"per_class.{target['class']}.{metric}" if metric in PER_CLASS_METRICS else metric


def check_target_definitions(targets: list[dict[str, Any]], class_names: list[str] | None) -> None:
    """Refuse targets that can never be evaluated, before any training.

    Args:
        targets: The ``targets`` config section.
        class_names: The data's classes; None checks everything but the class names.

    Raises:
        ConfigError: Unknown metric, missing or unknown class, no bound, or contradictory bounds.
    """
    for i, target in enumerate(targets):
        where = f"targets[{i}]"
        metric = target.get("metric")
        if metric not in GLOBAL_METRICS + PER_CLASS_METRICS:
            raise ConfigError(f"{where}: unknown metric {metric!r}",
                              f"use one of {', '.join(GLOBAL_METRICS + PER_CLASS_METRICS)}")
        if metric in PER_CLASS_METRICS:
            if target.get("class") is None:
                raise ConfigError(f"{where}: {metric} is a per-class metric and needs a class",
                                  "add class: the name of one of the data's classes")
            if class_names is not None and str(target["class"]) not in class_names:
                raise ConfigError(f"{where}: class {target['class']!r} does not exist in the data "
                                  f"(its classes: {', '.join(class_names)})",
                                  "name one of these classes, quoted, as in class: \"3\"")
        elif target.get("class") is not None:
            raise ConfigError(f"{where}: {metric} is not per class; remove class")
        low, high = target.get("min"), target.get("max")
        if low is None and high is None:
            raise ConfigError(f"{where}: {metric} has neither min nor max", "give the bound to reach")
        if low is not None and high is not None and low > high:
            raise ConfigError(f"{where}: min {low} is above max {high}", "no value can meet this target")


def check_targets(targets: list[dict[str, Any]], aggregate: dict[str, Any]) -> list[dict[str, Any]]:
    """Whether each target is met, by the mean over seeds and by the whole interval.

    A target is ``met`` when the mean is within its bounds, and ``met_with_confidence``
    when the whole confidence interval is (None with a single seed).
    """
    results = []
    for target in targets:
        name = target_metric_name(target)
        summary = aggregate.get(name)
        low, high = target.get("min"), target.get("max")

        def within(value: float | None) -> bool | None:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return None
            return (low is None or value >= low) and (high is None or value <= high)

        if summary is None:
            results.append({**target, "metric_name": name, "met": None, "met_with_confidence": None,
                            "reason": "the metric was not computed (no test image of the class?)"})
            continue
        worst = summary["high"] if target["metric"] in LOWER_IS_BETTER else summary["low"]
        if low is not None and high is not None and summary["low"] is not None:
            confident = within(summary["low"]) and within(summary["high"])
        else:
            confident = within(worst)
        results.append({**target, "metric_name": name, "mean": summary["mean"], "std": summary["std"],
                        "low": summary["low"], "high": summary["high"], "met": within(summary["mean"]),
                        "met_with_confidence": confident})
    return results


def median_seed(per_seed_value: dict[int, float], higher_is_better: bool = True) -> int:
    """The seed whose model is deployed: the median by the chosen metric.

    With an even number of seeds, the better of the two middle ones; ties are
    broken by seed, so the choice is deterministic. A typical model, neither the
    luckiest nor the worst.
    """
    if not per_seed_value:
        raise ValueError("no seed to choose from")
    ordered = sorted(per_seed_value.items(), key=lambda kv: (kv[1] if higher_is_better else -kv[1], -kv[0]))
    return ordered[len(ordered) // 2][0]


def predictions_table(table: pd.DataFrame, y_true: np.ndarray, proba: np.ndarray,
                      class_names: list[str]) -> pd.DataFrame:
    """One row per test image: path, label, predicted class, confidence, probabilities.

    Args:
        table: The test manifest (path, label and, when present, group).
        y_true: True class indices, in the manifest's order.
        proba: Predicted probabilities, in the manifest's order.
        class_names: The classes, in index order.
    """
    predicted = proba.argmax(axis=1)
    result = pd.DataFrame({"path": table["path"].to_numpy(), "label": table["label"].to_numpy()})
    if "group" in table.columns:
        result["group"] = table["group"].to_numpy()
    result["predicted"] = [class_names[i] for i in predicted]
    result["correct"] = predicted == np.asarray(y_true)
    result["confidence"] = proba.max(axis=1).round(6)
    for i, name in enumerate(class_names):
        result[f"p_{name}"] = proba[:, i].round(6)
    return result


def choose_deployed(validation: dict[int, float], monitor: str, rule: str) -> dict[str, Any]:
    """The final model to deploy, chosen without the test set.

    Args:
        validation: Each seed's best validation value of ``monitor``.
        monitor: The validation metric (its direction from :mod:`imgclf.core.objectives`).
        rule: ``median_validation`` or ``best_validation``.

    Returns:
        ``seed``, ``rule``, ``monitor``, ``value`` and a sentence saying why.
    """
    higher = direction(monitor) == "max"
    if rule == "median_validation":
        seed = median_seed(validation, higher_is_better=higher)
        why = (f"median {monitor} over {len(validation)} seeds: a typical model, neither the luckiest "
               "nor the worst; chosen on validation, never on the test set")
    elif rule == "best_validation":
        seed = (max if higher else min)(sorted(validation), key=validation.__getitem__)
        why = f"best {monitor} over {len(validation)} seeds; chosen on validation, never on the test set"
    else:
        raise ConfigError(f"unknown evaluation.deploy {rule!r}", "use median_validation or best_validation")
    return {"seed": int(seed), "rule": rule, "monitor": monitor, "value": float(validation[seed]), "why": why}


def summarize_evaluation(per_seed: dict[int, dict[str, Any]], targets: list[dict[str, Any]],
                         class_names: list[str], confidence: float) -> dict[str, Any]:
    """Across the final models: every metric's mean, std and interval, and the targets.

    Args:
        per_seed: Each seed's evaluation (``metrics`` from :func:`classification_metrics`,
            ``seal`` the seal event, ``fold``).
        targets: The ``targets`` config section.
        class_names: The classes (targets on unknown classes are refused).
        confidence: Level of the intervals.

    Returns:
        JSON-ready: ``seeds``, ``aggregate`` (by dotted metric name), ``targets``
        (each met or not), ``all_targets_met``, ``confusion_matrix`` (summed over
        seeds) and ``reevaluations`` (every evaluation after a seal was lifted,
        from the seals' histories: it stays on record in later runs).
    """
    check_target_definitions(targets, class_names)
    metrics = {seed: e["metrics"] for seed, e in per_seed.items()}
    aggregate = aggregate_over_seeds(metrics, confidence)
    checked = check_targets(targets, aggregate)
    summed = np.sum([np.asarray(m["confusion_matrix"]) for m in metrics.values()], axis=0)
    # Every time a model's seal was lifted, now or in an earlier run: the record stays.
    reevaluations = [{"seed": seed, **event} for seed, e in sorted(per_seed.items())
                     for event in e["seal"].get("unsealed", [])]
    return {"seeds": sorted(per_seed), "n_test": next(iter(metrics.values()))["n"] if metrics else 0,
            "confidence": confidence, "classes": class_names, "aggregate": aggregate, "targets": checked,
            "all_targets_met": all(t["met"] for t in checked) if checked else None,
            "all_targets_met_with_confidence": (all(t["met_with_confidence"] for t in checked)
                                                if checked else None),
            "confusion_matrix": summed.tolist(), "folds": {str(s): e.get("fold") for s, e in per_seed.items()},
            "reevaluations": reevaluations, "thresholds": summarize_thresholds(metrics),
            "thresholds_per_seed": {str(seed): m["thresholds"] for seed, m in metrics.items() if "thresholds" in m}}


def summarize_thresholds(metrics: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sensitivity target's operating threshold over the seeds: the thresholds chosen on
    validation, and the mean test sensitivity and specificity, plain and thresholded."""
    by_class: dict[str, list[dict[str, Any]]] = {}
    applied = False
    for m in metrics.values():
        record = m.get("thresholds") or {}
        applied = applied or bool(record.get("applied"))
        for entry in record.get("classes", []):
            by_class.setdefault(entry["class"], []).append(entry)
    result = []
    for name, entries in by_class.items():
        def mean(kind: str, key: str) -> float | None:
            # A model without a threshold (not needed) predicts as it did: its thresholded figure is its plain one.
            values = [(e["test"][kind] or e["test"]["plain"])[key] for e in entries]
            values = [v for v in values if v is not None and not math.isnan(v)]
            return float(np.mean(values)) if values else None
        result.append({"class": name, "min": entries[0]["min"], "applied": applied,
                       "thresholds": [e["threshold"] for e in entries],
                       "not_needed": sum(not e.get("needed", True) for e in entries),
                       "test_sensitivity": {"plain": mean("plain", "sensitivity"),
                                            "thresholded": mean("thresholded", "sensitivity")},
                       "test_specificity": {"plain": mean("plain", "specificity"),
                                            "thresholded": mean("thresholded", "specificity")}})
    return result


def headline_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The test figures as a compact JSON for ``dvc metrics show``/``diff``: mean, std and
    interval of the global metrics and of each class's recall, and the targets' verdicts."""
    aggregate = summary["aggregate"]
    names = [*GLOBAL_METRICS, *(f"per_class.{c}.recall" for c in summary["classes"])]
    result: dict[str, Any] = {
        name.replace("per_class.", "recall_").replace(".recall", ""):
            {k: aggregate[name][k] for k in ("mean", "std", "low", "high")}
        for name in names if name in aggregate}
    if summary.get("ensemble"):
        result["ensemble"] = {name.replace("per_class.", "recall_").replace(".recall", ""): row["ensemble"]
                              for name, row in summary["ensemble"]["metrics"].items()}
    result.update(n_test=summary["n_test"], n_models=len(summary["seeds"]),
                  targets_met=bool(summary["all_targets_met"]),
                  targets_met_with_confidence=bool(summary["all_targets_met_with_confidence"]))
    return result


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _verdict(flag: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[flag]


def evaluation_markdown(summary: dict[str, Any], deployed: dict[str, Any] | None = None) -> str:
    """The test results as Markdown: targets first, then headline and per-class metrics."""
    level = f"{100 * summary['confidence']:.0f}%"
    seeds = summary["seeds"]
    lines = [f"# Test evaluation ({len(seeds)} final models, seeds {', '.join(map(str, seeds))}; "
             f"{summary['n_test']} test images)", ""]
    if summary["reevaluations"]:
        lines += ["> **Warning: the sealed test set was evaluated again after upstream decisions changed.**",
                  "> These figures are no longer an unbiased estimate (docs/practices.md section 3).", ">"]
        for event in summary["reevaluations"]:
            keys = ", ".join(c["key"] for c in event["changes"][:5])
            lines.append(f"> seed {event['seed']} ({event.get('at', '')}): reason given: "
                         f"\"{event['reason']}\"; changed: {keys}")
        lines.append("")
    lines += ["## Targets", ""]
    if not summary["targets"]:
        lines += ["No target is configured (config `targets:`).", ""]
    else:
        verdict = "all met" if summary["all_targets_met"] else "NOT all met"
        lines += [f"Targets {verdict} by the mean; "
                  + ("all" if summary["all_targets_met_with_confidence"] else "not all")
                  + f" met with {level} confidence (the whole interval within bounds).", "",
                  f"| target | mean | std | {level} interval | met | met with confidence |",
                  "|---|---|---|---|---|---|"]
        for t in summary["targets"]:
            bound = " and ".join(x for x in (f">= {t['min']}" if t.get("min") is not None else "",
                                             f"<= {t['max']}" if t.get("max") is not None else "") if x)
            interval = (f"[{_fmt(t.get('low'))}, {_fmt(t.get('high'))}]" if t.get("low") is not None else "n/a")
            lines.append(f"| {t['metric_name']} {bound} | {_fmt(t.get('mean'))} | {_fmt(t.get('std'))} | "
                         f"{interval} | {_verdict(t['met'])} | {_verdict(t['met_with_confidence'])} |")
        lines.append("")
    if summary.get("thresholds"):
        applied = summary["thresholds"][0]["applied"]
        lines += ["## Operating thresholds", "",
                  "For each target on a class's sensitivity: the highest threshold on that class's probability "
                  "that meets the target on each final model's validation images, and its effect on the test "
                  "set (mean over seeds); \"-\" where the plain predictions already meet it on validation. "
                  + ("**Applied**: the figures above and below use it." if applied
                     else "Not applied (evaluation.apply_thresholds: false)."),
                  "", "| class | target | thresholds (per seed) | test sensitivity: plain -> thresholded | "
                  "test specificity: plain -> thresholded |", "|---|---|---|---|---|"]
        for t in summary["thresholds"]:
            chosen = ", ".join("-" if v is None else f"{v:.3f}" for v in t["thresholds"])
            lines.append(f"| {t['class']} | >= {t['min']} | {chosen} | {_fmt(t['test_sensitivity']['plain'])} -> "
                         f"{_fmt(t['test_sensitivity']['thresholded'])} | {_fmt(t['test_specificity']['plain'])} -> "
                         f"{_fmt(t['test_specificity']['thresholded'])} |")
        lines.append("")
    lines += ["## Metrics over seeds", ""]
    if any(name.startswith("tta.") for name in summary["aggregate"]):
        lines += ["Rows `tta.*`: test-time augmentation (evaluation.tta), each image's probabilities averaged "
                  "with those of its two mirrors; the other rows, the targets and the seal are the plain "
                  "predictions'.", ""]
    lines += [f"| metric | mean | std | {level} interval |", "|---|---|---|---|"]
    for name, m in summary["aggregate"].items():
        if name.startswith("per_class."):
            continue
        lines.append(f"| {name} | {_fmt(m['mean'])} | {_fmt(m['std'])} | [{_fmt(m['low'])}, {_fmt(m['high'])}] |")
    lines += ["", "## Per class (mean over seeds)", "",
              "| class | precision | recall (sensitivity) | specificity | F1 | ROC AUC |", "|---|---|---|---|---|---|"]
    for name in summary["classes"]:
        def mean(key: str) -> str:
            entry = summary["aggregate"].get(f"per_class.{name}.{key}")
            return _fmt(entry["mean"]) if entry else "n/a"
        lines.append(f"| {name} | {mean('precision')} | {mean('recall')} | {mean('specificity')} | "
                     f"{mean('f1')} | {mean('roc_auc')} |")
    if summary.get("ensemble"):
        lines += ensemble_markdown(summary["ensemble"], level)
    lines += agreed_errors_markdown(summary.get("agreed_errors"))
    if deployed:
        lines += ["", "## Deployed model", "",
                  f"Seed {deployed['seed']} ({deployed['rule']}: {deployed['why']}), "
                  f"{deployed['monitor']} {deployed['value']:.4f}."]
    return "\n".join(lines) + "\n"


def ensemble_section(ensemble: dict[str, Any], aggregate: dict[str, Any], targets: list[dict[str, Any]],
                     classes: list[str]) -> dict[str, Any]:
    """The ensemble's test figures beside the single models' mean, spread and interval.

    Args:
        ensemble: The ensemble's evaluation (``members``, ``metrics``, ``seal``).
        aggregate: The single models' aggregate (:func:`summarize_evaluation`).
        targets: The checked targets (each with ``metric_name`` and its bounds).
        classes: The classes.

    Returns:
        ``members``, ``metrics`` (the global metrics and each class's recall: the ensemble's value,
        the single models' mean, std and interval, and the gain over the mean), ``targets`` (each
        with the ensemble's value and whether it is met) and ``evaluation`` (its seal's count).
    """
    flat = flatten_metrics(ensemble["metrics"])
    rows = {}
    for name in (*GLOBAL_METRICS, *(f"per_class.{c}.recall" for c in classes)):
        if name not in flat or flat[name] is None:
            continue
        single = aggregate.get(name, {})
        mean = single.get("mean")
        rows[name] = {"ensemble": flat[name], "single_mean": mean, "single_std": single.get("std"),
                      "single_low": single.get("low"), "single_high": single.get("high"),
                      "gain": None if mean is None else flat[name] - mean}
    checked = []
    for target in targets:
        value = flat.get(target["metric_name"])
        low, high = target.get("min"), target.get("max")
        met = None if value is None else (low is None or value >= low) and (high is None or value <= high)
        checked.append({"metric_name": target["metric_name"], "min": low, "max": high, "value": value, "met": met})
    return {"members": ensemble["members"], "metrics": rows, "targets": checked,
            "evaluation": ensemble.get("seal", {}).get("evaluation")}


def ensemble_markdown(section: dict[str, Any], level: str) -> list[str]:
    """The summary's lines on the ensemble (:func:`ensemble_section`)."""
    lines = ["", f"## Ensemble of the {len(section['members'])} final models (probabilities averaged)", "",
             f"One evaluation of the sealed test set (evaluation {section['evaluation']} of the ensemble); "
             "beside it the single models' mean, spread and interval.", "",
             f"| metric | ensemble | single models: mean | std | {level} interval | gain over the mean |",
             "|---|---|---|---|---|---|"]
    for name, row in section["metrics"].items():
        lines.append(f"| {name} | {_fmt(row['ensemble'])} | {_fmt(row['single_mean'])} | {_fmt(row['single_std'])} | "
                     f"[{_fmt(row['single_low'])}, {_fmt(row['single_high'])}] | "
                     f"{_gain(row['gain'])} |")
    for target in section["targets"]:
        lines.append(f"- target {target['metric_name']}: ensemble {_fmt(target['value'])} -> {_verdict(target['met'])}")
    return lines


def _gain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"
