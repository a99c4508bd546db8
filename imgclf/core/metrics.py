"""Metrics of one model's predictions: what validation (each epoch) and the sealed test set share.

Pure functions on labels and predicted probabilities; the training loop computes the validation
metrics with them (:mod:`imgclf.training.validation_metrics`), the evaluate stage the test metrics
(:mod:`imgclf.evaluate.metrics`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts: rows are true classes, columns predicted classes."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: the gap between confidence and accuracy, weighted over equal-width bins."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin i holds confidences in (edge_i, edge_i+1]; a confidence of 0 joins the first bin.
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        member = bins == b
        if member.any():
            total += member.mean() * abs(correct[member].mean() - confidence[member].mean())
    return float(total)


def log_loss(y_true: np.ndarray, proba: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log-probability of the true class (probabilities clipped to [eps, 1])."""
    picked = np.clip(proba[np.arange(len(y_true)), y_true], eps, 1.0)
    return float(-np.mean(np.log(picked)))


def _safe_ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, class_names: list[str],
                           n_bins: int = 15, predicted: np.ndarray | None = None) -> dict[str, Any]:
    """Every test metric of one model.

    Args:
        y_true: True class indices, shape (n,).
        proba: Predicted probabilities, shape (n, n_classes), rows summing to 1.
        class_names: Names of the classes, in index order.
        n_bins: Bins of the expected calibration error.
        predicted: The predicted classes, where they are not the most probable ones (operating
            thresholds applied, :mod:`imgclf.evaluate.thresholds`); the log loss, the calibration
            and the ROC AUCs always read the probabilities.

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``log_loss``, ``ece``,
        ``per_class`` (precision, recall = sensitivity, specificity, f1,
        one-vs-rest ``roc_auc`` (None when the class is absent or alone),
        support), ``confusion_matrix`` (counts) and
        ``confusion_matrix_normalized`` (rows sum to 1).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = len(class_names)
    if proba.shape != (len(y_true), n_classes):
        raise ValueError(f"probabilities have shape {proba.shape}, expected ({len(y_true)}, {n_classes})")
    y_pred = proba.argmax(axis=1) if predicted is None else np.asarray(predicted, dtype=np.int64)
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    total = matrix.sum()
    per_class: dict[str, dict[str, Any]] = {}
    recalls, f1s = [], []
    for i, name in enumerate(class_names):
        tp = matrix[i, i]
        fn = matrix[i].sum() - tp
        fp = matrix[:, i].sum() - tp
        tn = total - tp - fn - fp
        precision = _safe_ratio(tp, tp + fp)
        recall = _safe_ratio(tp, tp + fn)
        f1 = _safe_ratio(2 * precision * recall, precision + recall)
        positives = y_true == i
        auc = None
        if 0 < positives.sum() < len(y_true):
            auc = float(roc_auc_score(positives, proba[:, i]))
        per_class[name] = {"precision": precision, "recall": recall, "sensitivity": recall,
                           "specificity": _safe_ratio(tn, tn + fp), "f1": f1, "roc_auc": auc,
                           "support": int(positives.sum())}
        if positives.any():
            recalls.append(recall)
        f1s.append(f1)
    rows = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        "macro_f1": float(np.mean(f1s)),
        "log_loss": log_loss(y_true, proba),
        "ece": expected_calibration_error(y_true, proba, n_bins),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalized": normalized.round(6).tolist(),
    }
