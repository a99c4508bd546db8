"""Test images every final model gets wrong (imgclf.evaluate.agreement), and their diagnosis."""

import logging

import numpy as np
import pandas as pd
import pytest

from imgclf.evaluate.agreement import CONFIDENT_WRONG, agreed_errors, agreed_errors_markdown
from imgclf.report.diagnosis import ACTIONS, diagnose_run, label_findings

PATHS = ["a/1.png", "a/2.png", "b/3.png", "c/4.png", "c/5.png"]
LABELS = ["a", "a", "b", "c", "c"]


def predictions(answers, p_label):
    """A model's prediction table: its answers, and its probability of each image's label (the rest
    of the probability on the answer, or shared when it answered the label)."""
    rows = []
    for label, answer, p in zip(LABELS, answers, p_label):
        proba = {name: 0.0 for name in "abc"}
        proba[label] = p
        if answer == label:
            rest = [name for name in "abc" if name != label]
            proba[rest[0]] = proba[rest[1]] = (1 - p) / 2
        else:
            proba[answer] = 1 - p
        rows.append({"predicted": answer, **{f"p_{name}": value for name, value in proba.items()}})
    return pd.DataFrame({"path": PATHS, "label": LABELS, **pd.DataFrame(rows)})


# Image 1: all three models sure it is "b" (a label error's look). Image 3: all wrong, but they
# disagree on the answer. Image 4: wrong for two models only. Images 2 and 5: right everywhere.
MODELS = [predictions(["b", "a", "a", "a", "c"], [0.02, 0.9, 0.3, 0.4, 0.8]),
          predictions(["b", "a", "c", "a", "c"], [0.05, 0.8, 0.2, 0.3, 0.9]),
          predictions(["b", "a", "a", "c", "c"], [0.08, 0.7, 0.1, 0.6, 0.7])]


def test_agreed_errors_counts_the_images_every_model_misses_most_confident_first():
    found = agreed_errors(MODELS)
    assert (found["models"], found["n_test"], found["count"], found["same_answer"], found["confident"]) == (3, 5, 2, 1, 1)
    assert found["mean_errors"] == pytest.approx((3 + 3 + 2) / 3)
    first, second = found["images"]
    assert first == {"path": "a/1.png", "label": "a", "answered": "b", "p_label": pytest.approx(0.05),
                     "same_answer": True}
    assert first["p_label"] <= CONFIDENT_WRONG
    # Image 3: two models answered "a", one "c": the most given answer; not the same answer.
    assert (second["path"], second["answered"], second["same_answer"]) == ("b/3.png", "a", False)
    assert second["p_label"] == pytest.approx(0.2)


def test_agreed_errors_needs_two_models_over_the_same_images():
    assert agreed_errors(MODELS[:1]) is None
    shuffled = MODELS[1].iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValueError, match="same images in the same order"):
        agreed_errors([MODELS[0], shuffled])
    with pytest.raises(ValueError, match="p_b"):
        agreed_errors([MODELS[0], MODELS[1].drop(columns="p_b")])


def test_the_summary_lists_the_agreed_errors():
    text = "\n".join(agreed_errors_markdown(agreed_errors(MODELS)))
    assert "2 of 5 test images were misclassified by all 3 final models" in text
    assert "| a/1.png | a | b | 0.0500 |" in text and "| b/3.png | b | a | 0.2000 |" in text
    assert agreed_errors_markdown(None) == []


def test_confident_agreed_errors_are_a_material_data_finding_that_sets_the_next_action():
    agreed = {"models": 3, "n_test": 200, "count": 6, "same_answer": 5, "confident": 4, "mean_errors": 9.0, "images": []}
    (finding,) = label_findings(agreed)
    assert (finding["kind"], finding["severity"], finding["action"]) == ("data", "warning", ACTIONS["labels"])
    assert "6 of 200 test images are misclassified by all 3 final models, 4 of them confidently" in finding["message"]
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.6, 0.5], "val_loss": [1.0, 0.7, 0.6],
                            "accuracy": [0.6, 0.8, 0.85], "val_accuracy": [0.6, 0.75, 0.8]})
    diagnosis = diagnose_run(history, [], [{"metric": "accuracy", "min": 0.9}], label_findings(agreed), False)
    assert diagnosis["next_action"] == ACTIONS["labels"]
    # Two confident ones of 200 (under 3, and under 1%): a note, listed, never the next action.
    (note,) = label_findings({**agreed, "confident": 2})
    assert note["severity"] == "note"
    diagnosis = diagnose_run(history, [], [{"metric": "accuracy", "min": 0.9}], [note], False)
    assert diagnosis["next_action"] != ACTIONS["labels"]
    assert label_findings(None) == [] and label_findings({**agreed, "count": 0}) == []


def test_the_evaluation_summary_job_reports_the_agreed_errors(tmp_path):
    import json

    from imgclf.evaluate import evaluation_summary
    from imgclf.core.metrics import classification_metrics

    index = tmp_path / "index.csv"
    pd.DataFrame({"path": PATHS, "label": LABELS}).to_csv(index, index=False)
    evaluations, tables = [], []
    for seed, model in zip((1, 2, 3), MODELS):
        y_true = [("abc").index(label) for label in LABELS]
        proba = model[["p_a", "p_b", "p_c"]].to_numpy()
        metrics = classification_metrics(np.array(y_true), proba, ["a", "b", "c"])
        path = tmp_path / f"seed_{seed}.json"
        path.write_text(json.dumps({"seed": seed, "fold": 0, "metrics": metrics, "seal": {}}))
        evaluations.append(path)
        tables.append(tmp_path / f"seed_{seed}.csv")
        model.to_csv(tables[-1], index=False)
    result = evaluation_summary(evaluations, index, [], 0.95, logging.getLogger("test"), tables)
    assert result["summary"]["agreed_errors"]["count"] == 2
    assert "## Images every model gets wrong" in result["markdown"]
