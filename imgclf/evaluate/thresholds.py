"""Operating thresholds: a class's sensitivity target met by a threshold chosen on validation data.

A model predicts the class of highest probability. When a target asks a minimum
sensitivity for one class (a missed melanoma is the costly error), predicting
that class as soon as its probability passes a lower threshold raises its
sensitivity at the cost of its specificity. The threshold is chosen on the
final model's validation images, never on the test set: the highest threshold
whose validation sensitivity meets the target (the highest, because every lower
one costs more specificity). Its effect on the test set is then reported beside
the plain predictions; the test metrics use it only where
``evaluation.apply_thresholds`` is true. The evaluation summary does this from
each final model's saved predictions (validation and test): a new sensitivity
target never evaluates the sealed test set again.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: Target metrics that ask a class's sensitivity.
SENSITIVITY_METRICS = ("sensitivity", "recall")


def sensitivity_targets(targets: list[dict[str, Any]], class_names: list[str]) -> list[dict[str, Any]]:
    """The targets with a minimum on one class's sensitivity (recall), first one per class, as
    ``{metric: sensitivity, class, min}`` (so that the result is its own selection)."""
    chosen: dict[str, dict[str, Any]] = {}
    for target in targets:
        name = str(target.get("class"))
        if target.get("metric") in SENSITIVITY_METRICS and target.get("min") is not None and name in class_names:
            chosen.setdefault(name, {"metric": "sensitivity", "class": name, "min": float(target["min"])})
    return list(chosen.values())


def predict_with_threshold(proba: np.ndarray, class_index: int, threshold: float,
                           predicted: np.ndarray | None = None) -> np.ndarray:
    """The predicted classes: ``class_index`` where its probability reaches ``threshold``, else
    ``predicted`` (by default the most probable class)."""
    predicted = np.asarray(proba).argmax(axis=1) if predicted is None else predicted
    return np.where(np.asarray(proba)[:, class_index] >= threshold, class_index, predicted)


def sensitivity_specificity(labels: np.ndarray, predicted: np.ndarray, class_index: int) -> dict[str, float]:
    """The class's sensitivity (recall) and specificity."""
    positives = np.asarray(labels) == class_index
    hits = np.asarray(predicted) == class_index
    sensitivity = float(hits[positives].mean()) if positives.any() else math.nan
    specificity = float((~hits[~positives]).mean()) if (~positives).any() else math.nan
    return {"sensitivity": sensitivity, "specificity": specificity}


def choose_threshold(labels: np.ndarray, proba: np.ndarray, class_index: int, min_sensitivity: float) -> float | None:
    """The highest threshold on the class's probability whose sensitivity on these (validation)
    images is at least ``min_sensitivity``; None when the class has no image here."""
    scores = np.sort(np.asarray(proba)[np.asarray(labels) == class_index, class_index])[::-1]
    if not len(scores):
        return None
    needed = max(1, math.ceil(min_sensitivity * len(scores) - 1e-9))
    return float(scores[min(needed, len(scores)) - 1])


def operating_thresholds(targets: list[dict[str, Any]], class_names: list[str], val_labels: np.ndarray,
                         val_proba: np.ndarray, test_labels: np.ndarray, test_proba: np.ndarray) -> list[dict[str, Any]]:
    """For each sensitivity target: the threshold chosen on validation, and what it does on validation
    and on the test set against the plain predictions.

    Returns:
        One entry per class with a sensitivity target: ``class``, ``min``, ``needed`` (False when
        the plain predictions already meet the target on validation: no threshold then),
        ``threshold`` (None when not needed, or when the validation set lacks the class), and
        ``validation``/``test``, each ``plain`` and ``thresholded`` sensitivity and specificity.
    """
    entries = []
    for target in sensitivity_targets(targets, class_names):
        index = class_names.index(target["class"])
        plain = sensitivity_specificity(val_labels, np.asarray(val_proba).argmax(axis=1), index)["sensitivity"]
        needed = not (plain >= target["min"])  # NaN (no such image) is needed: and gets no threshold
        threshold = choose_threshold(val_labels, val_proba, index, target["min"]) if needed else None
        entry: dict[str, Any] = {"class": target["class"], "min": target["min"], "needed": needed,
                                 "threshold": threshold}
        for split, labels, proba in (("validation", val_labels, val_proba), ("test", test_labels, test_proba)):
            plain = sensitivity_specificity(labels, np.asarray(proba).argmax(axis=1), index)
            shifted = (sensitivity_specificity(labels, predict_with_threshold(proba, index, threshold), index)
                       if threshold is not None else None)
            entry[split] = {"plain": plain, "thresholded": shifted}
        entries.append(entry)
    return entries


def thresholded_predictions(proba: np.ndarray, class_names: list[str], thresholds: list[dict[str, Any]]) -> np.ndarray:
    """The predictions with every chosen threshold applied, in the targets' order (the first
    target's class wins where two thresholds are passed)."""
    predicted = np.asarray(proba).argmax(axis=1)
    for entry in reversed(thresholds):
        if entry["threshold"] is not None:
            predicted = predict_with_threshold(proba, class_names.index(entry["class"]), entry["threshold"], predicted)
    return predicted


def labels_and_proba(table: pd.DataFrame, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The labels (as indices) and probabilities (``p_<class>`` columns) of a predictions table."""
    index = {name: i for i, name in enumerate(class_names)}
    labels = table["label"].astype(str).map(index).to_numpy(np.int64)
    return labels, table[[f"p_{name}" for name in class_names]].to_numpy(np.float64)


def thresholded_metrics(metrics: dict[str, Any], labels: np.ndarray, proba: np.ndarray, class_names: list[str],
                        thresholds: list[dict[str, Any]], n_bins: int) -> dict[str, Any]:
    """A model's test metrics with its operating thresholds applied to the predictions; the
    log loss, the calibration and the ROC AUCs stay those of the recorded probabilities."""
    from imgclf.core.metrics import classification_metrics

    shifted = classification_metrics(labels, proba, class_names, n_bins=n_bins,
                                     predicted=thresholded_predictions(proba, class_names, thresholds))
    shifted.update({k: metrics[k] for k in ("log_loss", "ece")})
    for name, values in shifted["per_class"].items():
        values["roc_auc"] = metrics["per_class"][name]["roc_auc"]
    return shifted
