"""The evaluation's summary over seeds, the predictions table and the choice of the deployed model."""

import numpy as np
import pandas as pd
import pytest

from imgclf.core.errors import ConfigError, ImgclfError
from imgclf.core.metrics import classification_metrics
from imgclf.evaluate.metrics import choose_deployed, evaluation_markdown, predictions_table, summarize_evaluation


def test_predictions_table():
    table = pd.DataFrame({"path": ["x.png", "y.png"], "label": ["a", "b"], "group": ["g1", "g2"]})
    proba = np.array([[0.9, 0.1], [0.7, 0.3]])
    result = predictions_table(table, np.array([0, 1]), proba, ["a", "b"])
    assert list(result.columns) == ["path", "label", "group", "predicted", "correct", "confidence", "p_a", "p_b"]
    assert result["predicted"].tolist() == ["a", "a"] and result["correct"].tolist() == [True, False]
    assert result["confidence"].tolist() == [0.9, 0.7]


def test_the_deployed_model_is_the_median_by_validation():
    accuracy = {1: 0.90, 2: 0.95, 3: 0.93, 4: 0.91, 5: 0.99}
    assert choose_deployed(accuracy, "val_accuracy", "median_validation")["seed"] == 3
    assert choose_deployed(accuracy, "val_accuracy", "best_validation")["seed"] == 5
    loss = {1: 0.5, 2: 0.1, 3: 0.3}
    assert choose_deployed(loss, "val_loss", "median_validation")["seed"] == 3
    chosen = choose_deployed(loss, "val_loss", "best_validation")
    assert chosen["seed"] == 2 and chosen["value"] == 0.1 and "never on the test set" in chosen["why"]


def evaluations(accuracies, unsealed=()):
    """Per-seed evaluations whose only difference is how many test images are right."""
    result = {}
    for seed, right in accuracies.items():
        y = np.array([0] * 5 + [1] * 5)
        pred = y.copy()
        pred[: 10 - right] = 1 - pred[: 10 - right]
        proba = np.eye(2)[pred] * 0.8 + 0.1
        result[seed] = {"metrics": classification_metrics(y, proba, ["a", "b"]), "fold": 0,
                        "seal": {"status": "first", "unsealed": [{"at": "t", "reason": "why", "status": "unsealed",
                                                                  "changes": [{"key": "config.seed"}]}]
                                 if seed in unsealed else []}}
    return result


def test_summary_aggregates_seeds_and_checks_targets():
    per_seed = evaluations({1: 9, 2: 8, 3: 10})
    targets = [{"metric": "accuracy", "min": 0.85}, {"metric": "accuracy", "min": 0.95},
               {"metric": "recall", "class": "b", "min": 0.5}]
    summary = summarize_evaluation(per_seed, targets, ["a", "b"], 0.95)
    accuracy = summary["aggregate"]["accuracy"]
    assert accuracy["mean"] == pytest.approx(0.9) and accuracy["std"] == pytest.approx(0.1)
    assert accuracy["low"] == pytest.approx(0.9 - 4.302653 * 0.1 / np.sqrt(3), abs=1e-5)
    assert [t["met"] for t in summary["targets"]] == [True, False, True]
    assert summary["targets"][0]["met_with_confidence"] is False  # the interval reaches below 0.85
    assert summary["all_targets_met"] is False and summary["reevaluations"] == []
    assert summary["confusion_matrix"] == np.sum([e["metrics"]["confusion_matrix"] for e in per_seed.values()],
                                                 axis=0).tolist()
    text = evaluation_markdown(summary)
    assert "| accuracy >= 0.95 | 0.9000 | 0.1000 |" in text and "**no**" in text
    with pytest.raises(ConfigError, match="class 'c' does not exist"):
        summarize_evaluation(per_seed, [{"metric": "f1", "class": "c", "min": 0.5}], ["a", "b"], 0.95)


def test_summary_keeps_every_unsealed_evaluation_on_record():
    summary = summarize_evaluation(evaluations({1: 9, 2: 8}, unsealed={2}), [], ["a", "b"], 0.95)
    assert [e["seed"] for e in summary["reevaluations"]] == [2]
    text = evaluation_markdown(summary)
    assert "Warning: the sealed test set was evaluated again" in text and 'reason given: "why"' in text
    assert "No target is configured" in text


def write_run(tmp_path, seeds_right):
    """What the final trainings and their evaluations leave, for the jobs that read them."""
    import json

    from imgclf.core.io import write_csv

    files = {k: [] for k in ("models", "trainings", "evaluations", "histories", "curves", "predictions")}
    for seed, (right, val_accuracy) in seeds_right.items():
        folder = tmp_path / f"seed_{seed}"
        folder.mkdir()
        record = evaluations({seed: right})[seed]
        (folder / "test.json").write_text(json.dumps({"seed": seed, **record}))
        (folder / "train.json").write_text(json.dumps({
            "seed": seed, "monitor": "val_loss", "best_value": 0.3, "classes": ["a", "b"],
            # The balanced accuracy ranks the seeds otherwise than the accuracy: 43 < 42 < 44 against 42 < 44 < 43.
            "at_best_epoch": {"val_accuracy": val_accuracy, "val_balanced_accuracy": {42: 0.8, 43: 0.7, 44: 0.9}[seed]},
            "image_size": [8, 8], "channels": 1, "fold": 0, "decisions": {"config": {"seed": seed}}}))
        (folder / "model.keras").write_bytes(f"model of seed {seed}".encode())
        (folder / "history.csv").write_text("epoch,loss\n1,0.5\n")
        (folder / "curves.png").write_bytes(b"png")
        write_csv(folder / "predictions.csv", pd.DataFrame({"path": ["x.png"], "label": ["a"], "predicted": ["a"]}))
        for key, name in (("models", "model.keras"), ("trainings", "train.json"), ("evaluations", "test.json"),
                          ("histories", "history.csv"), ("curves", "curves.png"), ("predictions", "predictions.csv")):
            files[key].append(str(folder / name))
    return files


def test_the_summary_and_deployment_jobs_read_every_seed_and_choose_on_validation(tmp_path):
    import hashlib
    import logging

    from imgclf.core.io import write_json
    from imgclf.evaluate import deploy_model, evaluation_summary

    log = logging.getLogger("test.evaluate")
    files = write_run(tmp_path, {42: (9, 0.91), 43: (8, 0.95), 44: (10, 0.93)})
    index = tmp_path / "index.csv"
    pd.DataFrame({"path": ["x.png", "y.png"], "label": ["a", "b"]}).to_csv(index, index=False)
    result = evaluation_summary(files["evaluations"], index, [{"metric": "accuracy", "min": 0.85}], 0.95, log)
    assert list(result) == ["summary", "headline", "markdown", "per_seed", "confusion_matrix", "metrics_plot"]
    assert result["summary"]["seeds"] == [42, 43, 44] and list(result["per_seed"]["seed"]) == [42, 43, 44]
    assert result["headline"]["accuracy"]["mean"] == pytest.approx(0.9)
    write_json(tmp_path / "summary.json", result["summary"])
    deployed = deploy_model(*(files[k] for k in ("models", "trainings", "evaluations", "histories", "curves",
                                                  "predictions")), tmp_path / "summary.json", "median_validation",
                            {"name": "val_accuracy", "direction": "max", "why": "test"}, log)
    card = deployed["card"]
    assert card["chosen"]["seed"] == 44  # the median validation accuracy (0.93), not the best test score
    assert card["chosen"]["monitor"] == "val_accuracy" and card["chosen"]["value"] == 0.93
    by_balance = deploy_model(*(files[k] for k in ("models", "trainings", "evaluations", "histories", "curves",
                                                    "predictions")), tmp_path / "summary.json", "median_validation",
                              {"name": "val_balanced_accuracy", "direction": "max", "why": "targets[0]"}, log)
    assert by_balance["card"]["chosen"]["seed"] == 42  # the objective, not the monitor, chooses
    with pytest.raises(ImgclfError, match="val_recall_a at its best epoch"):
        deploy_model(*(files[k] for k in ("models", "trainings", "evaluations", "histories", "curves", "predictions")),
                     tmp_path / "summary.json", "median_validation", {"name": "val_recall_a", "why": ""}, log)
    assert deployed["model"] == b"model of seed 44" and card["sha256"] == hashlib.sha256(b"model of seed 44").hexdigest()
    assert card["test"]["accuracy"] == 1.0 and card["all_targets_met"] is True
    assert list(deployed) == ["model", "history", "curves", "predictions", "card"]
