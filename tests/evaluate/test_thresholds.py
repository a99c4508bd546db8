"""Operating thresholds: chosen on validation to meet a sensitivity target, reported on test, applied on request."""

import numpy as np
import pytest

from imgclf.core.metrics import classification_metrics
from imgclf.evaluate.metrics import evaluation_markdown, summarize_thresholds
from imgclf.evaluate.thresholds import (choose_threshold, operating_thresholds, predict_with_threshold,
                                        sensitivity_specificity, sensitivity_targets, thresholded_predictions)

CLASSES = ["mel", "nv"]


def scored(p_mel_of_mel, p_mel_of_nv):
    """Labels and probabilities: melanomas scored p_mel_of_mel, naevi p_mel_of_nv."""
    labels = np.array([0] * len(p_mel_of_mel) + [1] * len(p_mel_of_nv))
    p = np.array(list(p_mel_of_mel) + list(p_mel_of_nv))
    return labels, np.stack([p, 1 - p], axis=1)


def test_the_highest_threshold_that_meets_the_sensitivity_on_validation():
    labels, proba = scored([0.9, 0.6, 0.45, 0.3, 0.2], [0.4, 0.1, 0.05, 0.35])
    # Plain argmax finds 2 of 5 melanomas (p >= 0.5).
    assert sensitivity_specificity(labels, proba.argmax(axis=1), 0)["sensitivity"] == pytest.approx(0.4)
    threshold = choose_threshold(labels, proba, 0, 0.8)
    assert threshold == pytest.approx(0.3)  # the 4th highest melanoma score: 4 of 5 = 0.8
    shifted = sensitivity_specificity(labels, predict_with_threshold(proba, 0, threshold), 0)
    assert shifted == {"sensitivity": 0.8, "specificity": 0.5}  # 0.4 and 0.35 of the naevi pass 0.3
    assert choose_threshold(labels, proba, 0, 1.0) == pytest.approx(0.2)
    assert choose_threshold(labels[5:], proba[5:], 0, 0.8) is None  # no melanoma: nothing to choose from


def test_thresholds_are_reported_on_test_and_applied_only_on_request():
    val_labels, val_proba = scored([0.9, 0.6, 0.45, 0.3, 0.2], [0.4, 0.1, 0.05, 0.35])
    test_labels, test_proba = scored([0.8, 0.4, 0.35], [0.2, 0.32, 0.1, 0.05])
    targets = [{"metric": "accuracy", "min": 0.5}, {"metric": "sensitivity", "class": "mel", "min": 0.8}]
    assert sensitivity_targets(targets, CLASSES) == [{"metric": "sensitivity", "class": "mel", "min": 0.8}]
    assert sensitivity_targets(sensitivity_targets(targets, CLASSES), CLASSES) == sensitivity_targets(targets, CLASSES)
    (entry,) = operating_thresholds(targets, CLASSES, val_labels, val_proba, test_labels, test_proba)
    assert entry["threshold"] == pytest.approx(0.3)
    assert entry["test"]["plain"]["sensitivity"] == pytest.approx(1 / 3)
    assert entry["test"]["thresholded"] == {"sensitivity": 1.0, "specificity": 0.75}
    predicted = thresholded_predictions(test_proba, CLASSES, [entry])
    plain = classification_metrics(test_labels, test_proba, CLASSES)
    applied = classification_metrics(test_labels, test_proba, CLASSES, predicted=predicted)
    assert plain["per_class"]["mel"]["recall"] == pytest.approx(1 / 3)
    assert applied["per_class"]["mel"]["recall"] == 1.0 and applied["log_loss"] == plain["log_loss"]
    summary = summarize_thresholds({1: {"thresholds": {"applied": False, "classes": [entry]}}})
    assert summary[0]["test_sensitivity"] == {"plain": pytest.approx(1 / 3), "thresholded": 1.0}
    text = evaluation_markdown({"confidence": 0.95, "seeds": [1], "n_test": 7, "reevaluations": [], "targets": [],
                                "aggregate": {}, "classes": CLASSES, "thresholds": summary})
    assert "## Operating thresholds" in text and "0.3333 -> 1.0000" in text and "Not applied" in text


def test_the_summary_chooses_thresholds_from_saved_predictions_and_applies_them_on_request(tmp_path):
    """evaluation_summary reads each model's validation and test predictions, never the test manifest."""
    import json
    import logging

    import pandas as pd

    val_labels, val_proba = scored([0.9, 0.6, 0.45, 0.3, 0.2], [0.4, 0.1, 0.05, 0.35])
    test_labels, test_proba = scored([0.8, 0.4, 0.35], [0.2, 0.32, 0.1, 0.05])

    def table(labels, proba):
        return pd.DataFrame({"path": [f"{i}.png" for i in range(len(labels))],
                             "label": [CLASSES[i] for i in labels], "p_mel": proba[:, 0], "p_nv": proba[:, 1]})

    (tmp_path / "index.csv").write_text("path,label\na.png,mel\nb.png,nv\n")
    record = {"seed": 1, "fold": 0, "seal": {"unsealed": []},
              "metrics": classification_metrics(test_labels, test_proba, CLASSES)}
    (tmp_path / "test.json").write_text(json.dumps(record))
    table(test_labels, test_proba).to_csv(tmp_path / "test.csv", index=False)
    table(val_labels, val_proba).to_csv(tmp_path / "val.csv", index=False)
    targets = [{"metric": "sensitivity", "class": "mel", "min": 0.8}]
    from imgclf.evaluate import evaluation_summary

    runs = {apply: evaluation_summary([tmp_path / "test.json"], tmp_path / "index.csv", targets, 0.95,
                                      logging.getLogger("t"), [tmp_path / "test.csv"], [tmp_path / "val.csv"], 15,
                                      apply)["summary"] for apply in (False, True)}
    plain, applied = runs[False], runs[True]
    assert plain["thresholds"][0]["thresholds"] == [pytest.approx(0.3)]
    assert plain["aggregate"]["per_class.mel.recall"]["mean"] == pytest.approx(1 / 3)
    assert applied["aggregate"]["per_class.mel.recall"]["mean"] == 1.0
    assert applied["aggregate"]["log_loss"]["mean"] == plain["aggregate"]["log_loss"]["mean"]
    assert plain["targets"][0]["met"] is False and applied["targets"][0]["met"] is True


def test_no_threshold_where_the_plain_predictions_already_meet_the_target():
    labels, proba = scored([0.9, 0.8, 0.7, 0.3], [0.4, 0.1])
    (entry,) = operating_thresholds([{"metric": "recall", "class": "mel", "min": 0.75}], CLASSES,
                                    labels, proba, labels, proba)
    assert entry["needed"] is False and entry["threshold"] is None and entry["test"]["thresholded"] is None
    assert np.array_equal(thresholded_predictions(proba, CLASSES, [entry]), proba.argmax(axis=1))
    assert summarize_thresholds({1: {"thresholds": {"applied": True, "classes": [entry]}}})[0]["not_needed"] == 1
