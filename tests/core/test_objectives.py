"""The objective follows the targets; every validation metric has a direction; bad names fail early."""

import pytest

from imgclf.core.config import validate_config
from imgclf.core.errors import ConfigError
from imgclf.core.objectives import (check_metric_name, check_objectives, direction, parse_metric,
                                    resolve_monitor, resolve_objective, target_validation_metric)
from imgclf.final import training_config


@pytest.mark.parametrize("name,parsed,way", [
    ("val_loss", ("loss", None), "min"),
    ("val_log_loss", ("log_loss", None), "min"),
    ("val_accuracy", ("accuracy", None), "max"),
    ("val_balanced_accuracy", ("balanced_accuracy", None), "max"),
    ("val_roc_auc", ("roc_auc", None), "max"),
    ("val_roc_auc_mel", ("roc_auc", "mel"), "max"),
    ("val_recall_slide_3", ("recall", "slide_3"), "max"),  # class names may hold underscores
    ("val_sensitivity_mel", ("recall", "mel"), "max"),
    ("val_specificity_8", ("specificity", "8"), "max"),
])
def test_names_parse_with_their_direction(name, parsed, way):
    assert parse_metric(name) == parsed
    assert direction(name) == way


@pytest.mark.parametrize("name", ["accuracy", "val_", "val_recall", "val_recall_", "val_ece", "val_bogus_x"])
def test_an_unknown_name_is_refused_with_the_names_there_are(name):
    with pytest.raises(ConfigError, match="val_balanced_accuracy"):
        parse_metric(name)


def config_with(targets, **sections):
    return validate_config({"targets": targets, **sections})


def test_the_objective_follows_the_first_target_computable_on_validation():
    config = config_with([{"metric": "ece", "max": 0.1}, {"metric": "sensitivity", "class": "mel", "min": 0.85},
                          {"metric": "balanced_accuracy", "min": 0.7}])
    for stage in ("explore", "tune", "deploy"):
        chosen = resolve_objective(config, stage)
        assert chosen["name"] == "val_recall_mel" and chosen["direction"] == "max"
        assert "targets[1]" in chosen["why"]
    # A per-class objective is not followed by the unweighted loss: the monitor is the objective.
    assert resolve_monitor(config)["name"] == "val_recall_mel"
    # The final trainings record the resolved monitor: a target that changes it changes their decisions.
    assert training_config(config, 42)["train"]["early_stopping"]["monitor"] == "val_recall_mel"


def test_without_targets_accuracy_ranks_and_the_loss_is_watched():
    config = config_with([])
    assert resolve_objective(config, "tune")["name"] == "val_accuracy"
    assert resolve_monitor(config)["name"] == "val_loss"
    accuracy = config_with([{"metric": "accuracy", "min": 0.9}])
    assert resolve_monitor(accuracy)["name"] == "val_loss"  # accuracy's smooth surrogate


def test_explicit_settings_win_and_contradictions_warn():
    config = config_with([{"metric": "balanced_accuracy", "min": 0.7}],
                         tune={"objective": "val_accuracy"}, train={"early_stopping": {"monitor": "val_loss"}})
    assert resolve_objective(config, "tune")["name"] == "val_accuracy"
    assert resolve_objective(config, "explore")["name"] == "val_balanced_accuracy"
    warnings = check_objectives(config, ["a", "b"])
    assert len(warnings) == 2
    assert any(w.startswith("tune.objective is val_accuracy") and "val_balanced_accuracy" in w for w in warnings)
    assert any(w.startswith("train.early_stopping.monitor is val_loss") for w in warnings)
    assert check_objectives(config_with([{"metric": "balanced_accuracy", "min": 0.7}]), ["a", "b"]) == []
    # val_loss follows accuracy: no warning.
    assert check_objectives(config_with([{"metric": "accuracy", "min": 0.7}],
                                        train={"early_stopping": {"monitor": "val_loss"}}), None) == []


def test_a_metric_of_an_absent_class_fails_before_training():
    config = config_with([], tune={"objective": "val_recall_dog"})
    with pytest.raises(ConfigError, match=r"tune.objective: val_recall_dog names class 'dog'.*cat, bird"):
        check_objectives(config, ["cat", "bird"])
    check_objectives(config, None)  # classes unknown yet: the jobs check
    with pytest.raises(ConfigError, match="train.early_stopping.monitor"):
        check_metric_name("train.early_stopping.monitor", "val_f1", ["a"])


def test_the_schema_refuses_a_name_without_val_prefix():
    with pytest.raises(ConfigError, match="objective"):
        validate_config({"tune": {"objective": "accuracy"}})


@pytest.mark.parametrize("target,name", [
    ({"metric": "accuracy"}, "val_accuracy"), ({"metric": "macro_f1"}, "val_macro_f1"),
    ({"metric": "log_loss"}, "val_log_loss"), ({"metric": "ece"}, None),
    ({"metric": "roc_auc", "class": "x"}, "val_roc_auc_x"), ({"metric": "f1", "class": 3}, "val_f1_3"),
])
def test_each_target_metric_has_its_validation_estimate(target, name):
    assert target_validation_metric(target) == name
