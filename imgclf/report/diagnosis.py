"""A diagnosis of each final run, in the order of docs/practices.md section 2.

When a model underperforms, check, from the most to the least impact: the data
(image quality, variety, labels, balance), underfitting, overfitting, then the
updates themselves (exploding or frozen weights: the learning rate and the
other hyperparameters). Each check here reads what the pipeline already wrote:
the validation and data-audit findings, the run's history (training curves)
and its weight-change records, and the targets. The *next action* is that of
the first problem found in this order; a run that meets its targets with no
problem is told so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from imgclf.evaluate import LABEL_CHECK

#: Thresholds of the checks (documented in the report and the README).
OVERFIT_RISE = 0.10  # validation loss at the end this much above its minimum (relative)...
OVERFIT_EPOCHS = 2  # ...reached at least this many epochs before the end (one bad epoch is noise)
OVERFIT_GAP = 0.10  # training accuracy this much above validation accuracy at the end
FROZEN_CHANGE = 1e-3  # relative weight change (from the initial weights) under which a layer "did not move"
EXPLODED_CHANGE = 10.0  # relative weight change above which a layer "blew up"
MATERIAL_SHARE = 0.01  # a validation warning on fewer images than this share is minor: it never sets the next action
#: Validation warnings that matter whatever their count: they bias what the model learns.
MATERIAL_CODES = ("class_imbalance", "label_conflict", "near_duplicate_label_conflict", "exact_duplicates",
                  "near_duplicates")
ONE_CLASS_SHARE = 0.8  # a model predicting one class for this share of the test images...
ONE_CLASS_EXCESS = 0.2  # ...this much above the class's true share predicts one class for most images

ORDER = ("data", "underfitting", "overfitting", "updates")

ACTIONS = {
    "data": "Fix the data first (docs/practices.md section 2, step 2): see the validation and audit findings; "
            "check image quality, label quality, variety and class balance, or gather more data.",
    "underfitting": "Underfitting (step 4): use a bigger network (more filters or layers, a larger input size, "
                    "a pretrained backbone), train longer, or raise the learning rate.",
    "still_improving": "Still improving at the last epoch: raise train.epochs (train.fine_tune.epochs for phase 2) "
                       "or the early-stopping patience; the worked example of docs/practices.md section 7 gained "
                       "most this way.",
    "first_epoch": "The best epoch is the first: the metric early stopping watches may disagree with the objective "
                   "(set train.early_stopping.monitor: auto, which follows the targets), or the learning rate is too "
                   "high (lower it 3 to 10 times).",
    "one_class": "The model predicts one class for most images: draw the classes evenly (train.sampling: balanced) "
                 "or weigh them (train.class_weights: balanced), and select by a metric that weighs classes "
                 "(a balanced_accuracy or per-class recall target makes the objective follow it).",
    "saliency": "The model looks at the image borders for a class (saliency maps): check its saliency grid in the "
                "report; crop or mask rulers, marks and frames, or even out how each class's images were acquired, "
                "then retrain (a model that reads a shortcut fails on images without it).",
    "labels": "Every final model gives the same other class, confidently, for these test images (listed under "
              "\"Images every model gets wrong\" in the test section). " + LABEL_CHECK,
    "overfitting": "Overfitting (step 5): add augmentation, dropout or weight decay, or stop earlier "
                   "(early stopping on the validation loss); more data helps most.",
    "overconfident": "The validation loss rises while the validation accuracy still improves: the model grows "
                     "overconfident rather than worse. Train longer with more patience (early stopping on "
                     "val_accuracy), not with more regularisation (docs/practices.md section 7's worked example).",
    "exploded": "The updates explode (step 6, the learning rate first): lower the learning rate (by 3 to 10 times), "
                "and check the input normalisation.",
    "frozen": "The weights do not move: check that the layers are trainable and the learning rate is not tiny; "
              "raise the learning rate.",
    "hyperparameters": "No data, fitting or update problem found: tune the other hyperparameters by decreasing "
                       "influence (the learning rate, then the optimizer and its parameters, then the rest).",
    "met": "The targets are met and no problem was found: deploy the chosen model, and watch for drift "
           "(docs/practices.md section 9).",
}


def _finding(kind: str, severity: str, message: str, action: str, **details: Any) -> dict[str, Any]:
    return {"kind": kind, "severity": severity, "message": message, "action": action, **details}


def data_findings(validation: list[dict[str, Any]], audit: list[dict[str, Any]],
                  n_images: int | None = None) -> list[dict[str, Any]]:
    """Data problems: validation warnings and data-audit findings (errors stop the pipeline earlier).

    A validation warning concerning fewer than :data:`MATERIAL_SHARE` of the ``n_images`` usable
    images (22 images of 6,000 without an age, in a column the model never reads) is *minor*
    (severity ``note``): listed, but it never sets the next action. Imbalance, duplicates and
    label conflicts (:data:`MATERIAL_CODES`) and every audit finding are material.
    """
    found = []
    for item in validation:
        if item.get("severity") in ("warning", "error"):
            count = item.get("count") or 0
            minor = (item.get("code") not in MATERIAL_CODES and n_images and item.get("severity") == "warning"
                     and 0 < count < MATERIAL_SHARE * n_images)
            found.append(_finding("data", "note" if minor else "warning",
                                  f"validation: {item['message']}" + (f" (minor: {count} of {n_images} images)"
                                                                       if minor else ""),
                                  ACTIONS["data"], hint=item.get("hint", "")))
    for item in audit:
        found.append(_finding("data", "warning", f"bias audit ({item['column']}): {item['message']}", ACTIONS["data"]))
    return found


def saliency_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The saliency maps' warnings (a class whose saliency sits on the border: the model may read a
    ruler, a mark or a frame) as data findings: material, before any fitting problem."""
    return [_finding("data", "warning", f"saliency: {item['message']}", ACTIONS["saliency"], hint=item.get("hint", ""))
            for item in findings]


def label_findings(agreed: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Test images every final model gets wrong (:func:`imgclf.evaluate.agreement.agreed_errors`),
    as a data finding: material when at least :data:`MATERIAL_SHARE` of the test images (and at
    least 3) are *confident* agreed errors (every model sure of the same other class: what a label
    error looks like); otherwise a note, which never sets the next action."""
    if not agreed or not agreed["count"]:
        return []
    confident, n_test = agreed["confident"], agreed["n_test"]
    material = confident >= max(3, MATERIAL_SHARE * n_test)
    message = (f"{agreed['count']} of {n_test} test images are misclassified by all {agreed['models']} final models, "
               f"{confident} of them confidently with the same answer: possible label errors")
    return [_finding("data", "warning" if material else "note", message, ACTIONS["labels"], variant="labels")]


def accuracy_target(targets: list[dict[str, Any]]) -> tuple[str, float] | None:
    """The first target with a minimum on accuracy or balanced accuracy, as (metric, minimum)."""
    for target in targets:
        if target.get("metric") in ("accuracy", "balanced_accuracy") and target.get("min") is not None:
            return target["metric"], float(target["min"])
    return None


def _finite(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan)


def fitting_findings(history: pd.DataFrame, targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Underfitting (training metric below the target) and overfitting (validation loss rising while
    the training loss falls, from which epoch), from a run's history."""
    found: list[dict[str, Any]] = []
    if history.empty or "loss" not in history:
        return found
    target = accuracy_target(targets)
    if target is not None and "accuracy" in history:
        # The training metric Keras records is accuracy; for a balanced-accuracy target it is the closest proxy.
        best_train = float(_finite(history["accuracy"]).max())
        if math.isfinite(best_train) and best_train < target[1]:
            found.append(_finding(
                "underfitting", "problem",
                f"training accuracy peaked at {best_train:.3f}, below the target {target[0]} >= {target[1]}: "
                "the model does not fit even its training images well enough", ACTIONS["underfitting"],
                best_training_accuracy=best_train))
    if "val_loss" not in history:
        return found
    val_loss, loss = _finite(history["val_loss"]), _finite(history["loss"])
    if val_loss.notna().sum() < 3:
        return found
    best = int(val_loss.idxmin())
    best_epoch = int(history.loc[best, "epoch"])
    last = val_loss.last_valid_index()
    rose = val_loss[last] > val_loss[best] * (1 + OVERFIT_RISE) and last - best >= OVERFIT_EPOCHS
    fell = loss[last] < loss[best]
    if rose and fell:
        still_improving = False
        if "val_accuracy" in history:
            val_acc = _finite(history["val_accuracy"])
            still_improving = bool(val_acc[best + 1:].max() > val_acc[best]) if last > best else False
        kind = "overconfident" if still_improving else "overfitting"
        found.append(_finding(
            "overfitting", "problem",
            f"validation loss rose from {val_loss[best]:.4f} (epoch {best_epoch}) to {val_loss[last]:.4f} "
            f"(epoch {int(history.loc[last, 'epoch'])}) while the training loss fell from {loss[best]:.4f} to "
            f"{loss[last]:.4f}: overfitting from epoch {best_epoch + 1}"
            + ("; validation accuracy still improved after it" if still_improving else ""),
            ACTIONS[kind], from_epoch=best_epoch + 1, variant=kind))
    elif {"accuracy", "val_accuracy"} <= set(history.columns):
        gap = float(_finite(history["accuracy"])[last] - _finite(history["val_accuracy"])[last])
        if gap > OVERFIT_GAP:
            found.append(_finding(
                "overfitting", "problem",
                f"training accuracy exceeds validation accuracy by {gap:.3f} at the last epoch", ACTIONS["overfitting"],
                gap=gap, variant="overfitting"))
    return found


def epoch_findings(history: pd.DataFrame, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The best epoch at the run's last epoch (still improving) or at its first (the monitor and the
    objective disagree, or the rate is too high), from its metrics (``best_epoch``, ``status``,
    ``monitor``).

    Args:
        history: The run's history.
        run: Its training metrics (``metrics.json``): ``best_epoch``, ``status``, ``monitor``.
    """
    found: list[dict[str, Any]] = []
    best, status = run.get("best_epoch"), run.get("status")
    if history.empty or best is None or status == "diverged":
        return found
    epochs = [int(e) for e in history["epoch"]]
    monitor = run.get("monitor", "the monitored metric")
    if best == epochs[-1] and status == "completed" and len(epochs) >= 2:
        found.append(_finding("underfitting", "problem",
                              f"the best epoch ({best}) is the last one trained: {monitor} was still improving "
                              "when the epochs ran out", ACTIONS["still_improving"], variant="still_improving"))
    elif best == epochs[0] and len(epochs) >= 3:
        found.append(_finding("updates", "problem",
                              f"the best epoch is the first of {len(epochs)}: {monitor} only got worse after it",
                              ACTIONS["first_epoch"], variant="first_epoch"))
    return found


def prediction_findings(confusion: list[list[int]], class_names: list[str]) -> list[dict[str, Any]]:
    """A model that predicts one class for most images (the majority class, typically), from its
    test confusion matrix (rows: true classes)."""
    matrix = np.asarray(confusion, dtype=float)
    if matrix.ndim != 2 or matrix.sum() == 0 or len(class_names) != matrix.shape[0]:
        return []
    predicted, true = matrix.sum(axis=0) / matrix.sum(), matrix.sum(axis=1) / matrix.sum()
    top = int(predicted.argmax())
    if predicted[top] >= ONE_CLASS_SHARE and predicted[top] - true[top] >= ONE_CLASS_EXCESS:
        return [_finding("underfitting", "problem",
                         f"the model predicts {class_names[top]} for {100 * predicted[top]:.0f}% of the test images, "
                         f"which are {100 * true[top]:.0f}% {class_names[top]}", ACTIONS["one_class"],
                         variant="one_class")]
    return []


def update_findings(history: pd.DataFrame, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Updates that explode (non-finite losses, weights blown up) or do not move (frozen weights).

    Args:
        history: The run's history.
        changes: The weight-change records of its weight samples: per epoch and layer,
            ``relative_change`` from the initial weights and ``mean_abs``.
    """
    found: list[dict[str, Any]] = []
    loss_columns = [c for c in ("loss", "val_loss") if c in history]
    bad = history[[c for c in loss_columns]].apply(pd.to_numeric, errors="coerce")
    if not bad.empty and (~np.isfinite(bad.to_numpy(dtype=float))).any():
        epoch = int(history.loc[(~np.isfinite(bad.to_numpy(dtype=float))).any(axis=1), "epoch"].iloc[0])
        found.append(_finding("updates", "problem", f"the loss became NaN or infinite at epoch {epoch}",
                              ACTIONS["exploded"], variant="exploded", epoch=epoch))
    if not changes:
        return found
    table = pd.DataFrame(changes)
    last = table[table["epoch"] == table["epoch"].max()]
    if last.empty or table["epoch"].max() == 0:
        return found
    # Relative changes of kernels only: biases start at zero, so any move is "infinitely" large.
    kernels = last[last["weight"] == "kernel"]
    change = _finite(kernels["relative_change"])
    blown = pd.concat([kernels[(change > EXPLODED_CHANGE) | change.isna()],
                       last[~np.isfinite(pd.to_numeric(last["mean_abs"], errors="coerce").fillna(np.inf))]])
    if not blown.empty and not any(f.get("variant") == "exploded" for f in found):
        names = ", ".join(sorted(set(blown["layer"] + "/" + blown["weight"])))
        found.append(_finding("updates", "problem",
                              f"weights blew up (changed by more than {EXPLODED_CHANGE:g} times their initial norm, "
                              f"or became non-finite): {names}", ACTIONS["exploded"], variant="exploded"))
    if change.notna().any() and float(change.max()) < FROZEN_CHANGE:
        found.append(_finding("updates", "problem",
                              f"no sampled layer moved by more than {FROZEN_CHANGE:g} of its initial norm "
                              f"(largest change {float(change.max()):.2g})", ACTIONS["frozen"], variant="frozen"))
    return found


def diagnose_run(history: pd.DataFrame, changes: list[dict[str, Any]], targets: list[dict[str, Any]],
                 data: list[dict[str, Any]], targets_met: bool | None, run: dict[str, Any] | None = None,
                 test: dict[str, Any] | None = None, class_names: list[str] | None = None) -> dict[str, Any]:
    """The diagnosis of one final run.

    Args:
        history: Its history (epoch, loss, accuracy, val_loss, val_accuracy...).
        changes: Its weight-change records.
        targets: The configured targets.
        data: :func:`data_findings` (shared by every run).
        targets_met: Whether the targets are met over the seeds (None: no targets).
        run: Its training metrics (best epoch, status, monitor), for :func:`epoch_findings`.
        test: Its test metrics (the confusion matrix), for :func:`prediction_findings`.
        class_names: The classes, in the confusion matrix's order.

    Returns:
        ``findings`` in the order of docs/practices.md section 2 (data, underfitting,
        overfitting, updates), ``next_action`` and ``reason`` (which finding decided it).
    """
    findings = data + fitting_findings(history, targets) + update_findings(history, changes)
    if run is not None:
        findings += epoch_findings(history, run)
    if test is not None and class_names:
        findings += prediction_findings(test.get("confusion_matrix", []), class_names)
    findings.sort(key=lambda f: ORDER.index(f["kind"]))
    problems = [f for f in findings if f["severity"] == "problem"]
    exploded = next((f for f in problems if f.get("variant") == "exploded"), None)
    if exploded is not None:
        # A diverged run says nothing about its data or its fit: the updates come first.
        decided = exploded
    elif targets_met is False or (targets_met is None and problems):
        # The model underperforms: the first material finding in the order of section 2 decides.
        decided = next((f for f in findings if f["severity"] != "note"), None)
    else:
        decided = problems[0] if problems else None
    if decided is None:
        action = ACTIONS["met"] if targets_met else ACTIONS["hyperparameters"]
        reason = "targets met, no problem found" if targets_met else "no problem found in the data, fit or updates"
    else:
        action, reason = decided["action"], f"{decided['kind']}: {decided['message']}"
    return {"findings": findings, "next_action": action, "reason": reason}


def changes_from_weight_samples(path: str) -> list[dict[str, Any]]:
    """The weight-change records stored in a run's ``weight_samples.npz``."""
    import json

    with np.load(path) as arrays:
        return json.loads(str(arrays["changes"])) if "changes" in arrays.files else []
