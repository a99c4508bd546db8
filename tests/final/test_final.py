"""The final trainings' plan: seeds, folds, the config each reads, the tuning result, the decisions,
and the seal check before each training."""

import json

import pytest

from imgclf.core.config import validate_config
from imgclf.core.errors import ConfigError
from imgclf.final.plan import (apply_tuning_result, check_final, decisions, effective_settings, final_fold,
                               final_seeds, fingerprint, training_config, tuned_config)


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


def test_decisions_fingerprint_follows_config_and_manifests(tmp_path):
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("path,sha256,label,group\na.png,1,a,a.png\n")
    val.write_text("path,sha256,label,group\nb.png,2,a,b.png\n")
    c = training_config(config(), 42)
    first = decisions(c, train, val)
    assert fingerprint(first) == fingerprint(decisions(c, train, val))
    train.write_text("path,sha256,label,group\nc.png,1,a,c.png\n")
    assert fingerprint(first) != fingerprint(decisions(c, train, val))


def test_decisions_hold_only_the_training_sections(tmp_path):
    """Later stages' settings (and new keys in their schema) are not decisions of a final model."""
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("path,sha256,label,group\na.png,1,a,a.png\n")
    val.write_text("path,sha256,label,group\nb.png,2,a,b.png\n")
    full = validate_config({"carbon": {"country_iso_code": "FRA"}})
    record = decisions(full, train, val)
    assert set(record["config"]) == {"seed", "data", "model", "train"}
    assert fingerprint(record) == fingerprint(decisions(validate_config({}), train, val))


def test_the_tuning_result_is_read_once_the_same_way_for_the_seal_and_the_training(tmp_path):
    base = training_config(config(), 42)
    assert tuned_config(base, None) == (base, {})
    best = tmp_path / "best_hyperparameters.json"
    best.write_text(json.dumps({"fixed_from_study": {"train.optimizer": "sgd"},
                                "hyperparameters": {"model.dropout": 0.3}}))
    result, applied = tuned_config(base, best)
    assert result["train"]["optimizer"] == "sgd" and result["model"]["dropout"] == 0.3
    assert applied == {"train.optimizer": "sgd", "model.dropout": 0.3}


def test_the_seal_check_job_passes_a_first_or_unchanged_training_and_refuses_a_changed_one(tmp_path):
    import logging

    from imgclf.evaluate.seal import SealedTestError, record_evaluation
    from imgclf.final import check_seal

    log = logging.getLogger("test.final")
    train, val, seal = tmp_path / "train.csv", tmp_path / "val.csv", tmp_path / "seal" / "seed_42.json"
    train.write_text("path,sha256,label,group\na.png,1,a,a.png\n")
    val.write_text("path,sha256,label,group\nb.png,2,a,b.png\n")
    base = training_config(config(), 42)
    first = check_seal(base, 42, train, val, None, seal, None, None, 1, None, log)["check"]
    effective = effective_settings(base, 32, 1, None)
    assert first["status"] == "first"
    assert first["decisions_sha256"] == fingerprint(decisions(base, train, val, effective))
    current = {**decisions(base, train, val, effective), "resumed": None, "test_manifest_sha256": "t"}
    record_evaluation(seal, tmp_path / "seal" / "events.jsonl", 42, current, {**first, "changes": []},
                      {"accuracy": 0.9})
    assert check_seal(base, 42, train, val, None, seal, None, None, 1, None, log)["check"]["status"] == "same"
    longer = {**base, "train": {**base["train"], "epochs": 11}}
    with pytest.raises(SealedTestError, match="config.train.epochs: 10 -> 11"):
        check_seal(longer, 42, train, val, None, seal, None, None, 1, None, log)
    assert check_seal(longer, 42, train, val, None, seal, "asked", None, 1, None, log)["check"]["status"] == "unsealed"
    # What the training actually uses is sealed too: another thread count is named.
    with pytest.raises(SealedTestError, match="effective.intra_op_threads: 1 -> 4"):
        check_seal(base, 42, train, val, None, seal, None, None, 4, None, log)


def test_a_probed_batch_size_that_changes_breaks_the_seal_loudly(tmp_path):
    """The probe's pick is a sealed decision: a rerun of the probe that picks another size (a
    loaded machine) stops the retraining instead of passing as 'decisions unchanged'."""
    import logging

    from imgclf.evaluate.seal import SealedTestError, record_evaluation
    from imgclf.final import check_seal

    log = logging.getLogger("test.final")
    train, val, seal = tmp_path / "train.csv", tmp_path / "val.csv", tmp_path / "seal" / "seed_42.json"
    train.write_text("path,sha256,label,group\na.png,1,a,a.png\n")
    val.write_text("path,sha256,label,group\nb.png,2,a,b.png\n")
    probe = tmp_path / "batch_size.json"
    probe.write_text(json.dumps({"chosen": 32}))
    auto = training_config(config(train={"batch_size": "auto"}), 42)
    first = check_seal(auto, 42, train, val, None, seal, None, probe, 1, None, log)["check"]
    current = {**decisions(auto, train, val, effective_settings(auto, 32, 1, None)), "test_manifest_sha256": "t"}
    assert current["effective"]["batch_size"] == 32 and current["effective"]["batch_size_from"] == "probe"
    record_evaluation(seal, tmp_path / "seal" / "events.jsonl", 42, current, {**first, "changes": []},
                      {"accuracy": 0.9})
    assert check_seal(auto, 42, train, val, None, seal, None, probe, 1, None, log)["check"]["status"] == "same"
    probe.write_text(json.dumps({"chosen": 16}))
    with pytest.raises(SealedTestError, match="effective.batch_size: 32 -> 16"):
        check_seal(auto, 42, train, val, None, seal, None, probe, 1, None, log)


def test_effective_settings_record_the_initial_weights_file(tmp_path):
    imagenet = training_config(config(data={"image_size": [32, 32]},
                                      model={"architecture": "efficientnet_lite0", "weights": "imagenet"}), 1)
    record = {"files": [{"architecture": "efficientnet_lite0", "sha256": "abc"}]}
    assert effective_settings(imagenet, 16, 2, record)["initial_weights_sha256"] == "abc"
    assert effective_settings(training_config(config(), 1), 16, 2, None)["initial_weights_sha256"] is None
    own = tmp_path / "mine.weights.h5"
    own.write_bytes(b"weights")
    mine = training_config(config(data={"image_size": [32, 32]},
                                  model={"architecture": "efficientnet_lite0", "weights": str(own)}), 1)
    import hashlib

    assert effective_settings(mine, 16, 2, None)["initial_weights_sha256"] == hashlib.sha256(b"weights").hexdigest()
