"""Final trainings' configs, the sealed test set, deployment choice, summaries, stage times."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_folder
from imgclf.config import validate_config
from imgclf.errors import ConfigError
from imgclf.evaluation import (choose_deployed, classification_metrics, evaluation_markdown, predictions_table,
                               summarize_evaluation)
from imgclf.final import (apply_tuning_result, check_final, decisions, final_fold, final_seeds, fingerprint,
                          training_config)
from imgclf.seal import SealedTestError, changes, check_seal, read_seal, record_evaluation
from imgclf.sources import source_class_names
from imgclf.timing import stage_times, stage_times_table


def config(**sections):
    return validate_config({"split": {"n_folds": 3}, **sections})


def test_seeds_and_folds():
    assert final_seeds(config(seed=7)) == [7, 8, 9, 10, 11]
    assert final_seeds(config(final={"seeds": [3, 1]})) == [3, 1]
    one = config(final={"n_seeds": 4, "fold": 2})
    assert [final_fold(one, s) for s in final_seeds(one)] == [2, 2, 2, 2]
    rotate = config(final={"n_seeds": 4, "folds": "rotate"})
    assert [final_fold(rotate, s) for s in final_seeds(rotate)] == [0, 1, 2, 0]


def test_training_config_keeps_only_what_training_reads():
    c = config(final={"epochs": 3}, targets=[{"metric": "accuracy", "min": 0.5}])
    result = training_config(c, 44)
    assert set(result) == {"seed", "data", "model", "train"}
    assert result["seed"] == 44 and result["train"]["epochs"] == 3
    assert c["train"]["epochs"] == 10  # the experiment's config is untouched


def test_tuning_result_is_applied_but_not_its_epochs():
    base = training_config(config(), 42)
    best = {"fixed_from_study": {"train.optimizer": "sgd", "train.learning_rate": 0.1},
            "hyperparameters": {"train.learning_rate": 0.01, "model.dropout": 0.2, "train.epochs": 2}}
    result, applied = apply_tuning_result(base, best)
    assert result["train"]["optimizer"] == "sgd" and result["train"]["learning_rate"] == 0.01
    assert result["model"]["dropout"] == 0.2 and result["train"]["epochs"] == 10
    assert applied == {"train.optimizer": "sgd", "train.learning_rate": 0.01, "model.dropout": 0.2}
    assert apply_tuning_result(base, None) == (base, {})
    with pytest.raises(ConfigError, match="best_hyperparameters.json: 'train.nope' is not a config key"):
        apply_tuning_result(base, {"hyperparameters": {"train.nope": 1}})
    with pytest.raises(ConfigError, match="model.dropout"):
        apply_tuning_result(base, {"hyperparameters": {"model.dropout": 3.0}})


def test_load_time_checks_of_final_and_targets():
    check_final(config(targets=[{"metric": "recall", "class": "3", "min": 0.9}]), [str(d) for d in range(10)])
    cases = [
        (config(targets=[{"metric": "recall", "class": "eleven", "min": 0.9}]), "class 'eleven' does not exist"),
        (config(targets=[{"metric": "recall", "min": 0.9}]), "needs a class"),
        (config(targets=[{"metric": "accuracy"}]), "neither min nor max"),
        (config(targets=[{"metric": "accuracy", "min": 0.9, "max": 0.8}]), "min 0.9 is above max 0.8"),
        (validate_config({"split": {"n_folds": 1}, "final": {"folds": "rotate"}}), "nothing to rotate over"),
    ]
    for c, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_final(c, [str(d) for d in range(10)])
    # Classes unknown at load time: everything else is still checked.
    check_final(config(targets=[{"metric": "recall", "class": "eleven", "min": 0.9}]), None)
    with pytest.raises(ConfigError, match="needs a class"):
        check_final(config(targets=[{"metric": "f1", "min": 0.9}]), None)


def test_class_names_are_read_from_every_source(tmp_path):
    root = make_folder(tmp_path / "images", {"cat": 1, "dog": 1})
    (root / ".hidden").mkdir()
    assert source_class_names({"source": "folder"}, root) == ["cat", "dog"]
    assert source_class_names({"source": "digits"}, "") == [str(d) for d in range(10)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,dx\na.png, mel\nb.png,nv\nc.png,mel\n")
    data = {"source": "manifest", "manifest": str(manifest), "label_column": "dx"}
    assert source_class_names(data, tmp_path) == ["mel", "nv"]
    assert source_class_names({**data, "label_column": "nope"}, tmp_path) is None
    assert source_class_names({"source": "folder"}, tmp_path / "absent") is None


def test_decisions_fingerprint_follows_config_and_manifests(tmp_path):
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("path,sha256,label,group\na.png,1,a,a.png\n")
    val.write_text("path,sha256,label,group\nb.png,2,a,b.png\n")
    c = training_config(config(), 42)
    first = decisions(c, train, val)
    assert fingerprint(first) == fingerprint(decisions(c, train, val))
    train.write_text("path,sha256,label,group\nc.png,1,a,c.png\n")
    assert fingerprint(first) != fingerprint(decisions(c, train, val))


def test_the_seal_refuses_changed_decisions_unless_a_reason_is_given(tmp_path):
    seal_path, events = tmp_path / "seal" / "seed_1.json", tmp_path / "seal" / "events.jsonl"
    now = {"config": {"train": {"learning_rate": 0.01}}, "train_manifest_sha256": "t", "val_manifest_sha256": "v"}
    assert read_seal(seal_path) is None
    event = check_seal(None, now, None, 1, "training")
    assert event["status"] == "first"
    record_evaluation(seal_path, events, 1, {**now, "test_manifest_sha256": "x"}, event, {"accuracy": 0.9})
    seal = read_seal(seal_path)
    assert seal["evaluations"] == 1 and seal["test_manifest_sha256"] == "x"
    # Same decisions: allowed (training does not know the test manifest; evaluation does).
    assert check_seal(seal, now, None, 1, "training")["status"] == "same"
    assert check_seal(seal, {**now, "test_manifest_sha256": "x"}, None, 1, "evaluation")["status"] == "same"
    changed = {**now, "config": {"train": {"learning_rate": 0.02}}}
    with pytest.raises(SealedTestError, match=r"config.train.learning_rate: 0.01 -> 0.02") as error:
        check_seal(seal, changed, None, 1, "training")
    assert "evaluation.unseal_reason" in str(error.value)
    with pytest.raises(SealedTestError, match="test_manifest_sha256"):
        check_seal(seal, {**now, "test_manifest_sha256": "y"}, None, 1, "evaluation")
    event = check_seal(seal, changed, "a reviewer asked for it", 1, "training")
    assert event["status"] == "unsealed" and event["changes"][0]["key"] == "config.train.learning_rate"
    record_evaluation(seal_path, events, 1, {**changed, "test_manifest_sha256": "x"}, event, {"accuracy": 0.8})
    seal = read_seal(seal_path)
    assert seal["evaluations"] == 2 and [h["status"] for h in seal["history"]] == ["first", "unsealed"]
    assert check_seal(seal, changed, None, 1, "training")["status"] == "same"  # sealed again, on the new decisions
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["status"] for e in lines] == ["first", "unsealed"] and lines[1]["reason"] == "a reviewer asked for it"


def test_changes_list_every_differing_key():
    assert changes({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 3], "d": 0}}) == [
        {"key": "a.c", "sealed": [1, 2], "now": [1, 3]}, {"key": "a.d", "sealed": None, "now": 0}]


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


def test_stage_times_sum_jobs_per_stage(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "explore" / "study").mkdir(parents=True)
    (tmp_path / "validate_data.tsv").write_text(header + "1.5\t0:00:01\t200\t0\t0\t0\t0\t0\t0\t0\n")
    for point, seconds in (("p00", 10.0), ("p01", 12.5)):
        (tmp_path / "explore" / "study" / f"{point}.tsv").write_text(
            header + f"{seconds}\t0:00:10\t700\t0\t0\t0\t0\t0\t0\t0\n")
    (tmp_path / "broken.tsv").write_text("")
    rows = stage_times(tmp_path)
    assert [r["stage"] for r in rows] == ["validate_data", "explore"]
    assert rows[1] == {"stage": "explore", "jobs": 2, "seconds": 22.5, "longest_job_seconds": 12.5,
                       "peak_rss_mb": 700}
    table = stage_times_table(rows)
    assert "explore" in table and "24.0" in table  # the total
    assert "no benchmark file" in stage_times_table(stage_times(tmp_path / "absent"))


def test_decisions_hold_only_the_training_sections(tmp_path):
    """Later stages' settings (and new keys in their schema) are not decisions of a final model."""
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("path,sha256,label,group\na.png,1,a,a.png\n")
    val.write_text("path,sha256,label,group\nb.png,2,a,b.png\n")
    full = validate_config({"carbon": {"country_iso_code": "FRA"}})
    record = decisions(full, train, val)
    assert set(record["config"]) == {"seed", "data", "model", "train"}
    assert fingerprint(record) == fingerprint(decisions(validate_config({}), train, val))
