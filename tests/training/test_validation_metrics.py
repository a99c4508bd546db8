"""Validation metrics each epoch: values against scikit-learn, and early stopping driven by them."""

import numpy as np
import pytest
from sklearn import metrics as sk

from imgclf.core import runtime

runtime.configure(0, 1)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from imgclf.training.validation_metrics import (  # noqa: E402
    SmoothedMetric, ValidationMetrics, smoothed_name, validation_metrics)

CLASSES = ["akiec", "mel", "nv"]


def fixed_predictions():
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 1, 0, 2, 2])
    logits = rng.normal(size=(len(labels), 3)) + 1.5 * np.eye(3)[labels]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, proba


def test_values_equal_scikit_learn_on_fixed_predictions():
    labels, proba = fixed_predictions()
    predicted = proba.argmax(axis=1)
    got = validation_metrics(labels, proba, CLASSES)
    assert got["val_accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert got["val_balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(labels, predicted))
    assert got["val_macro_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
    assert got["val_roc_auc"] == pytest.approx(sk.roc_auc_score(labels, proba, multi_class="ovr", average="macro"))
    assert got["val_loss"] == pytest.approx(sk.log_loss(labels, proba))
    assert got["val_log_loss"] == got["val_loss"]
    recall = sk.recall_score(labels, predicted, average=None)
    precision = sk.precision_score(labels, predicted, average=None)
    f1 = sk.f1_score(labels, predicted, average=None)
    matrix = sk.confusion_matrix(labels, predicted)
    for i, name in enumerate(CLASSES):
        assert got[f"val_recall_{name}"] == pytest.approx(recall[i])
        assert got[f"val_precision_{name}"] == pytest.approx(precision[i])
        assert got[f"val_f1_{name}"] == pytest.approx(f1[i])
        tn = matrix.sum() - matrix[i].sum() - matrix[:, i].sum() + matrix[i, i]
        assert got[f"val_specificity_{name}"] == pytest.approx(tn / (matrix.sum() - matrix[i].sum()))
        assert got[f"val_roc_auc_{name}"] == pytest.approx(sk.roc_auc_score(labels == i, proba[:, i]))


def test_a_class_absent_from_validation_has_no_auc_and_no_recall_in_the_balance():
    labels = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    got = validation_metrics(labels, proba, CLASSES)
    assert np.isnan(got["val_roc_auc_nv"])
    assert got["val_balanced_accuracy"] == pytest.approx((0.5 + 0.5) / 2)
    assert got["val_roc_auc"] == pytest.approx(np.mean([sk.roc_auc_score(labels == i, proba[:, i]) for i in (0, 1)]))


def test_the_callback_adds_the_metrics_early_stopping_reads():
    """Early stopping on a per-class recall: the callback must run first and fill the logs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_recall_b", mode="max", patience=1)
    history = model.fit(data, epochs=3, verbose=0,
                        callbacks=[ValidationMetrics(data, y, ["a", "b"]), stop]).history
    assert len(history["val_recall_b"]) == len(history["loss"]) >= 2
    proba = model.predict(data, verbose=0)
    assert history["val_balanced_accuracy"][-1] == pytest.approx(
        sk.balanced_accuracy_score(y, proba.argmax(axis=1)))


def test_the_moving_average_is_an_exponential_one_started_by_the_first_value():
    import pandas as pd

    values = [0.50, 0.55, 0.90, 0.60, float("nan"), 0.64]
    smoother = SmoothedMetric("val_balanced_accuracy", 0.6)
    got = []
    for epoch, value in enumerate(values):
        logs = {"val_balanced_accuracy": value}
        smoother.on_epoch_end(epoch, logs)
        got.append(logs[smoothed_name("val_balanced_accuracy")])
    finite = pd.Series([v for v in values if np.isfinite(v)]).ewm(alpha=0.4, adjust=False).mean().tolist()
    # A NaN epoch (a class absent) carries the average over instead of poisoning it.
    assert got == pytest.approx(finite[:4] + [finite[3]] + finite[4:])
    with pytest.raises(ValueError, match="smoothing"):
        SmoothedMetric("val_loss", 1.0)


def watch(values, smoothing, patience=3):
    """The epoch (1-based) at which early stopping ends a run whose metric takes these values."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    smoother = SmoothedMetric("val_balanced_accuracy", smoothing)
    monitor = smoothed_name("val_balanced_accuracy") if smoothing else "val_balanced_accuracy"
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=patience)
    for callback in (smoother, stop):
        callback.set_model(model)
    model.stop_training = False
    stop.on_train_begin()
    for epoch, value in enumerate(values):
        logs = {"val_balanced_accuracy": value}
        smoother.on_epoch_end(epoch, logs)
        stop.on_epoch_end(epoch, logs)
        if model.stop_training:
            return epoch + 1
    return None


def test_early_stopping_on_the_average_rides_out_a_one_epoch_spike():
    """HAM10000's third seed: a spike at the initial rate stopped a run that was still improving."""
    climbing = [0.40, 0.45, 0.50, 0.60, 0.52, 0.54, 0.56, 0.58, 0.60, 0.62]
    assert watch(climbing, 0.0) == 7  # three epochs below the spike
    assert watch(climbing, 0.6) is None  # the trend keeps rising: no stop
    assert watch([0.40, 0.50, 0.55, 0.50, 0.48, 0.47, 0.46, 0.45, 0.44, 0.43], 0.6) is not None
