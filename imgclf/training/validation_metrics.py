"""Validation metrics each epoch, from one pass of predictions.

Keras computes a loss and an accuracy on validation data; a user whose target
is balanced accuracy or the sensitivity to one class needs those instead, and
needs them *during* training: early stopping, the best checkpoint and the
learning-rate reduction can only watch what the epoch's logs hold. So each
epoch the model predicts the validation images once and every metric of
:mod:`imgclf.core.objectives` is computed from those probabilities and added to
the logs (``val_loss`` and ``val_accuracy`` among them: Keras's own validation
pass is then not needed). Callbacks placed after this one see them.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from imgclf.core.metrics import classification_metrics, log_loss

#: Probabilities are clipped here before the log, as Keras's cross-entropy does.
EPSILON = 1e-7
#: The per-class metrics, as the test set's per-class metrics name them.
PER_CLASS = ("recall", "specificity", "precision", "f1", "roc_auc")


def validation_metrics(labels: np.ndarray, proba: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """Every validation metric of one set of predictions.

    Args:
        labels: True class indices, shape (n,).
        proba: Predicted probabilities, shape (n, n_classes).
        class_names: The classes, in index order.

    Returns:
        ``val_loss`` (= ``val_log_loss``: the mean cross-entropy, unweighted), ``val_accuracy``,
        ``val_balanced_accuracy`` (mean recall of the classes present), ``val_macro_f1``,
        ``val_roc_auc`` (macro one-vs-rest over the classes present with both outcomes; NaN
        when none) and per class ``val_recall_<c>``, ``val_specificity_<c>``,
        ``val_precision_<c>``, ``val_f1_<c>`` and ``val_roc_auc_<c>`` (NaN when the class is
        absent or alone).
    """
    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if not np.isfinite(proba).all() or not len(labels):  # a diverged model: nothing to rank by (the loop stops it)
        names = ["loss", "log_loss", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc"]
        return {**{f"val_{m}": float("nan") for m in names},
                **{f"val_{m}_{c}": float("nan") for c in class_names for m in PER_CLASS}}
    # The same metrics as the test set's (imgclf.core.metrics), with Keras's clipping for the loss.
    metrics = classification_metrics(labels, proba, class_names)
    loss = log_loss(labels, proba, eps=EPSILON)
    result = {"val_loss": loss, "val_log_loss": loss, "val_accuracy": metrics["accuracy"],
              "val_balanced_accuracy": metrics["balanced_accuracy"], "val_macro_f1": metrics["macro_f1"]}
    aucs = []
    for name, values in metrics["per_class"].items():
        for metric in PER_CLASS:
            value = values[metric]
            result[f"val_{metric}_{name}"] = float("nan") if value is None else float(value)
        if values["roc_auc"] is not None:
            aucs.append(values["roc_auc"])
    result["val_roc_auc"] = float(np.mean(aucs)) if aucs else float("nan")
    return result


class ValidationMetrics(keras.callbacks.Callback):
    """Adds every validation metric to the epoch's logs (place it before the callbacks that read them).

    Args:
        data: The validation dataset (batched, in the order of ``labels``; its labels are ignored).
        labels: The validation labels, in the dataset's order.
        class_names: The classes, in index order.
    """

    def __init__(self, data: Any, labels: np.ndarray, class_names: list[str]) -> None:
        super().__init__()
        self.data, self.labels, self.class_names = data, np.asarray(labels), list(class_names)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        proba = self.model.predict(self.data, verbose=0)
        logs.update(validation_metrics(self.labels, proba, self.class_names))


def smoothed_name(monitor: str) -> str:
    """The log key of ``monitor``'s moving average (``val_balanced_accuracy_smoothed``)."""
    return f"{monitor}_smoothed"


class SmoothedMetric(keras.callbacks.Callback):
    """Adds the exponential moving average of one logged metric to the epoch's logs.

    A validation metric measured on a few hundred images jumps from epoch to epoch (balanced
    accuracy on a few dozen images of the small classes moves by 0.1): early stopping that reads
    single epochs then stops on a one-epoch spike, and the best checkpoint picks that spike, whose
    score is partly luck. The average ``s_t = smoothing * s_(t-1) + (1 - smoothing) * v_t``
    (``s_1 = v_1``, so no start-up bias) follows the trend instead. Place it after
    :class:`ValidationMetrics` and before the callbacks that watch :func:`smoothed_name`.

    Args:
        monitor: The logged metric to average.
        smoothing: The weight of the past, in [0, 1); 0 keeps the metric as it is.
    """

    def __init__(self, monitor: str, smoothing: float) -> None:
        super().__init__()
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.monitor, self.smoothing = monitor, float(smoothing)
        self.value: float | None = None  # the average so far (saved in resume states)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        value = logs.get(self.monitor)
        if value is not None and np.isfinite(value):
            value = float(value)
            self.value = value if self.value is None else self.smoothing * self.value + (1 - self.smoothing) * value
        if self.value is not None:
            logs[smoothed_name(self.monitor)] = self.value
