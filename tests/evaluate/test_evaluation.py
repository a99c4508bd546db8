"""Test metrics against values computed by hand on a fixed prediction set."""

import math

import numpy as np
import pytest

from imgclf.core.errors import ConfigError
from imgclf.core.metrics import classification_metrics, expected_calibration_error
from imgclf.evaluate.metrics import (aggregate_over_seeds, check_target_definitions, check_targets, mean_interval,
                                     median_seed)

CLASSES = ["a", "b", "c"]
Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array([[0.7, 0.2, 0.1],   # a, right
              [0.4, 0.5, 0.1],   # a, predicted b
              [0.1, 0.8, 0.1],   # b, right
              [0.2, 0.6, 0.2],   # b, right
              [0.1, 0.1, 0.8],   # c, right
              [0.5, 0.2, 0.3]])  # c, predicted a


def test_metrics_match_hand_computed_values():
    m = classification_metrics(Y, P, CLASSES, n_bins=10)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    a, b, c = (m["per_class"][k] for k in CLASSES)
    assert (a["precision"], a["recall"], a["specificity"], a["f1"]) == pytest.approx((0.5, 0.5, 0.75, 0.5))
    assert (b["precision"], b["recall"], b["specificity"], b["f1"]) == pytest.approx((2 / 3, 1, 0.75, 0.8))
    assert (c["precision"], c["recall"], c["specificity"], c["f1"]) == pytest.approx((1, 0.5, 1, 2 / 3))
    assert b["sensitivity"] == b["recall"]
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # Class a: positives score 0.7 and 0.4; negatives 0.1, 0.2, 0.1, 0.5: 7 of 8 pairs ordered.
    assert a["roc_auc"] == pytest.approx(7 / 8)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.4, 0.8, 0.6, 0.8, 0.3])))
    # Bins of width 0.1: {0.5, 0.5} both wrong, {0.6} right, {0.7} right, {0.8, 0.8} right.
    assert m["ece"] == pytest.approx(2 / 6 * 0.5 + 1 / 6 * 0.4 + 1 / 6 * 0.3 + 2 / 6 * 0.2)
    assert m["confusion_matrix_normalized"][2] == [0.5, 0.0, 0.5]


def test_perfectly_calibrated_predictions_have_zero_ece():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(y, proba) == 0.0


def test_a_class_absent_from_the_test_set_has_no_auc():
    m = classification_metrics(np.array([0, 0, 1]), np.array([[.9, .05, .05], [.2, .7, .1], [.3, .6, .1]]),
                               CLASSES)
    assert m["per_class"]["c"]["roc_auc"] is None and m["per_class"]["c"]["support"] == 0


def test_mean_interval_uses_student_t():
    interval = mean_interval([0.8, 0.9, 1.0])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert (interval["mean"], interval["std"]) == pytest.approx((0.9, 0.1))
    assert (interval["low"], interval["high"]) == pytest.approx((0.9 - half, 0.9 + half))
    assert mean_interval([0.9])["low"] is None


def test_targets_pass_and_fail():
    per_seed = {seed: classification_metrics(Y, P, CLASSES) for seed in (1, 2, 3)}
    per_seed[2] = classification_metrics(Y, np.eye(3)[Y] * 0.9 + 0.1 / 3, CLASSES)  # a perfect model
    aggregate = aggregate_over_seeds(per_seed)
    assert aggregate["accuracy"]["mean"] == pytest.approx((4 / 6 * 2 + 1) / 3)
    targets = [{"metric": "accuracy", "min": 0.7},                     # mean 0.778: met
               {"metric": "accuracy", "min": 0.95},                    # not met
               {"metric": "sensitivity", "class": "b", "min": 0.9},    # 1.0 in every seed
               {"metric": "log_loss", "max": 0.1}]                     # not met
    results = check_targets(targets, aggregate)
    assert [r["met"] for r in results] == [True, False, True, False]
    assert results[0]["met_with_confidence"] is False  # the interval reaches below 0.7
    assert results[2]["met_with_confidence"] is True   # no spread: the interval is the mean
    assert results[2]["metric_name"] == "per_class.b.sensitivity"


@pytest.mark.parametrize("target, message", [
    ({"metric": "sensitivity", "class": "z", "min": 0.9}, "class 'z' does not exist"),
    ({"metric": "recall", "min": 0.9}, "needs a class"),
    ({"metric": "auroc", "min": 0.9}, "unknown metric 'auroc'"),
    ({"metric": "accuracy"}, "neither min nor max"),
    ({"metric": "accuracy", "min": 0.9, "max": 0.8}, "no value can meet"),
    ({"metric": "accuracy", "class": "a", "min": 0.9}, "not per class"),
])
def test_impossible_targets_are_refused(target, message):
    with pytest.raises(ConfigError, match=message):
        check_target_definitions([target], CLASSES)


def test_median_seed_is_the_typical_model():
    assert median_seed({1: 0.90, 2: 0.95, 3: 0.80, 4: 0.85, 5: 0.99}) == 1
    assert median_seed({1: 0.2, 2: 0.1, 3: 0.3}, higher_is_better=False) == 1
    assert median_seed({7: 0.5, 3: 0.5, 5: 0.5}) in (3, 5, 7)


def test_intervals_of_bounded_metrics_stay_within_zero_and_one():
    per_seed = {seed: classification_metrics(Y, P, CLASSES) for seed in (1, 2)}
    per_seed[2] = classification_metrics(Y, np.eye(3)[Y] * 0.9 + 0.1 / 3, CLASSES)  # a perfect model
    aggregate = aggregate_over_seeds(per_seed)
    # Two seeds, 4/6 and 1: the t-interval (12.7 x the standard error) reaches far past [0, 1].
    assert (aggregate["accuracy"]["low"], aggregate["accuracy"]["high"]) == (0.0, 1.0)
    log_loss = aggregate["log_loss"]
    assert log_loss["low"] == 0.0 and log_loss["high"] > 1.0  # not bounded by 1
