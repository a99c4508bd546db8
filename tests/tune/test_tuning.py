"""Tuning core: search-space checks, resume without redoing trials, seeded sequence."""

import json
import os

import numpy as np
import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

from imgclf.core.config import validate_config  # noqa: E402
from imgclf.core.errors import ConfigError  # noqa: E402
from imgclf.tune.search_space import apply_values, check_search_space  # noqa: E402
from imgclf.tune.search import TrialError, TrialRunner, make_tuner, run_tuning  # noqa: E402
from imgclf.tune.trial import train_trial  # noqa: E402

SPACE = [
    {"name": "train.optimizer", "type": "choice", "values": ["adam", "sgd"]},
    {"name": "train.momentum", "type": "float", "min": 0.5, "max": 0.95, "when": {"name": "train.optimizer", "values": ["sgd"]}},
    {"name": "train.learning_rate", "type": "float", "min": 1e-4, "max": 1e-1, "sampling": "log"},
    {"name": "model.dropout", "type": "float", "min": 0.0, "max": 0.5},
]


def base_config():
    return validate_config({"seed": 1, "train": {"epochs": 1, "batch_size": 16}})


@pytest.mark.parametrize("space, message", [
    ([], "search_space is empty"),
    ([{"name": "train.learning_rate", "type": "float", "min": 0.1, "max": 0.01}], "needs min < max"),
    ([{"name": "train.learning_rate", "type": "float", "min": 0, "max": 0.1, "sampling": "log"}], "log sampling"),
    ([{"name": "train.lerning_rate", "type": "float", "min": 0.01, "max": 0.1}], "'train.lerning_rate' is not a config key"),
    ([{"name": "train.momentum", "type": "float", "min": 0.5, "max": 0.9, "when": {"name": "train.optimizer", "values": ["sgd"]}}],
     "not declared before it"),
    ([SPACE[0], {"name": "train.momentum", "type": "float", "min": 0.5, "max": 0.9,
                 "when": {"name": "train.optimizer", "values": ["nadam"]}}], "would never be active"),
    ([{"name": "train.optimizer", "type": "choice", "values": ["adam", "lion"]}], "train.optimizer"),
])
def test_bad_search_spaces_are_refused_before_training(space, message):
    with pytest.raises(ConfigError, match=message):
        check_search_space(space, base_config())
        # A value outside the schema is only caught when applied: try every choice.
        for parameter in space:
            for value in parameter.get("values", []):
                apply_values(base_config(), {parameter["name"]: value})


def tuning_config(max_trials, objective="val_accuracy", algorithm="bayesian"):
    config = validate_config({"seed": 1, "data": {"image_size": [32, 32]},
                              "train": {"epochs": 1, "batch_size": 16},
                              "tune": {"enabled": True, "max_trials": max_trials, "epochs": 1, "algorithm": algorithm,
                                       "data_fraction": 1.0, "search_space": SPACE}})
    config["tune"]["objective"] = objective  # the schema allows two; a test needs one never computed
    return config


def search(fold, directory, max_trials, calls=None, monkeypatch=None):
    if calls is not None:
        original = TrialRunner.run

        def counting_run(self, hp):
            calls.append(1)
            return original(self, hp)

        monkeypatch.setattr(TrialRunner, "run", counting_run)
    return run_tuning(tuning_config(max_trials), fold, directory, 16)


@pytest.mark.slow
def test_two_trials_resume_without_redoing_the_first_and_repeat_with_the_seed(fold, tmp_path, monkeypatch):
    first = search(fold, tmp_path / "a", max_trials=1)
    assert len(first["table"]) == 1
    calls = []
    resumed = search(fold, tmp_path / "a", max_trials=2, calls=calls, monkeypatch=monkeypatch)  # a new tuner
    assert len(calls) == 1 and len(resumed["table"]) == 2
    table = resumed["table"]
    assert list(table.columns[:2]) == ["trial", "status"] and table["val_accuracy"].notna().all()
    assert (table["epochs_run"] == 1).all() and (table["trial_seconds"] > 0).all()
    inactive = table["train.optimizer"] == "adam"
    assert table.loc[inactive, "train.momentum"].isna().all()  # only active for sgd
    monkeypatch.undo()
    again = search(fold, tmp_path / "b", max_trials=2)
    keys = ["train.optimizer", "train.learning_rate", "model.dropout", "val_accuracy"]
    # Same seed, same trials; each trial seeded alone, so a resumed search scores them identically.
    assert again["table"][keys].equals(table[keys])
    assert set(resumed["best"]) >= {"train.optimizer", "train.learning_rate", "model.dropout"}
    assert set(resumed["histories"]) == set(table["trial"])


@pytest.mark.slow
def test_each_trial_runs_in_its_own_process_so_memory_stays_flat(fold, tmp_path):
    """TensorFlow keeps memory from every fit in a process; trials in child processes do not add up."""
    result = run_tuning(tuning_config(3, algorithm="random"), fold, tmp_path, 16)
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "trials").glob("*.result.json"))]
    pids = {r["pid"] for r in results}
    assert len(results) == 3 and len(pids) == 3 and os.getpid() not in pids
    table = result["table"]
    assert (table["trial_peak_rss_mb"] > 0).all() and table["rss_mb"].notna().all()


def trial_data(fold, **changes):
    return {"train_manifest": str(fold.train_manifest), "val_manifest": str(fold.val_manifest),
            "data_root": str(fold.data_root), "classes": ["a", "b", "c"], "image_size": [32, 32], "channels": 3,
            "batch_size": 16, "objective": "val_accuracy", "seed": 1, "threads": 1, **changes}


def test_zero_budget_and_missing_objective_are_errors(fold, tmp_path):
    with pytest.raises(ConfigError, match="at least one trial"):
        make_tuner("bayesian", None, "val_auc", 0, 1, tmp_path, "t")
    request = {**trial_data(fold, objective="val_auc"), "config": tuning_config(1)}
    with pytest.raises(ConfigError, match="'val_auc' is never computed"):
        train_trial(request)


@pytest.mark.parametrize("objective,way", [("val_loss", "min"), ("val_log_loss", "min"),
                                           ("val_balanced_accuracy", "max"), ("val_recall_a", "max")])
def test_keras_tuner_optimises_each_objective_in_its_direction(objective, way, tmp_path):
    tuner = make_tuner("random", None, objective, 1, 1, tmp_path, f"t_{objective}")
    assert tuner.oracle.objective.name == objective and tuner.oracle.objective.direction == way


def test_a_trial_computes_and_stops_on_the_user_metric(fold):
    """A trial reports every validation metric; a per-class monitor drives its early stopping."""
    config = tuning_config(1)
    config["train"]["epochs"] = 2
    config["train"]["early_stopping"]["monitor"] = "val_recall_b"
    request = {**trial_data(fold, objective="val_balanced_accuracy"), "config": config}
    history = train_trial(request)["history"]
    assert {"val_balanced_accuracy", "val_recall_b", "val_macro_f1", "val_roc_auc", "val_loss"} <= set(history)
    assert all(0 <= v <= 1 for v in history["val_balanced_accuracy"])


def test_a_failing_trial_stops_the_search_with_its_error(fold, tmp_path):
    runner = TrialRunner(tuning_config(1), SPACE, trial_data(fold, data_root=str(tmp_path / "nowhere")), tmp_path)
    tuner = make_tuner("random", runner, "val_accuracy", 1, 1, tmp_path, "t")
    with pytest.raises(TrialError, match="tuning trial .* failed") as error:
        tuner.search(verbose=0)
    assert "nowhere" in str(error.value) and "a rerun resumes the search" in str(error.value)


@pytest.mark.slow
def test_changed_search_settings_start_afresh_instead_of_reusing_old_trials(fold, tmp_path, monkeypatch):
    """A resumed search must not count trials run with another space, epochs or data."""
    search(fold, tmp_path / "a", max_trials=1)
    narrowed = tuning_config(1)
    narrowed["tune"]["search_space"] = [{"name": "model.dropout", "type": "float", "min": 0.1, "max": 0.2}]
    calls = []
    original = TrialRunner.run

    def counting_run(self, hp):
        calls.append(1)
        return original(self, hp)

    monkeypatch.setattr(TrialRunner, "run", counting_run)
    result = run_tuning(narrowed, fold, tmp_path / "a", 16)
    assert len(calls) == 1 and len(result["table"]) == 1  # the old trial is gone, one new one ran
    assert set(result["best"]) == {"model.dropout"} and 0.1 <= result["best"]["model.dropout"] <= 0.2


def test_settings_trials_do_not_read_keep_the_search():
    """A report setting, the data folder or the thread count do not discard finished trials."""
    from imgclf.tune.search import search_settings

    config = tuning_config(2)
    data = {"data_root": "/a", "threads": 2, "classes": ["a"], "train_manifest": "x", "seed": 1}
    base = search_settings(config, data, "path,sha256\n", __file__)
    other = validate_config({**config, "report": {"mistakes": 3}, "carbon": {"pue": 1.5}})
    assert search_settings(other, {**data, "data_root": "/b", "threads": 1}, "path,sha256\n", __file__) == base
    more = tuning_config(5)  # a larger budget continues the same search
    assert search_settings(more, data, "path,sha256\n", __file__) == base
    narrower = tuning_config(2)
    narrower["tune"]["epochs"] = 3
    assert search_settings(narrower, data, "path,sha256\n", __file__) != base


def test_the_tuner_state_is_saved_atomically(tmp_path, monkeypatch):
    """A job killed while Keras Tuner saves oracle.json used to leave it empty, and the retried
    job could not reload the search (seen in the SLURM kill test)."""
    from keras_tuner.src import utils as kt_utils

    state = tmp_path / "oracle.json"
    kt_utils.save_json(str(state), {"trials": 1})
    assert json.loads(state.read_text()) == {"trials": 1}

    def killed(_):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        kt_utils.save_json(str(state), {"trials": 2})
    assert json.loads(state.read_text()) == {"trials": 1}  # the previous state, whole


def test_a_pretrained_trial_trains_its_head_on_features_with_the_result_of_images(fold, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    histories = {}
    for precompute in (True, False):
        config = validate_config({
            "seed": 1, "data": {"image_size": [32, 32], "channels": 3},
            "model": {"architecture": "efficientnet_lite0", "weights": "imagenet", "dense_units": 8},
            "train": {"epochs": 2, "batch_size": 16, "precompute_features": precompute,
                      "early_stopping": {"enabled": False},
                      "fine_tune": {"enabled": True, "unfreeze_layers": 5, "epochs": 1}}})
        histories[precompute] = train_trial({**trial_data(fold), "config": config})["history"]
    assert len(histories[True]["loss"]) == 3  # two head epochs on features, one of fine-tuning
    for key in ("loss", "val_loss", "val_accuracy"):  # phase 1; phase 2's shuffling starts afresh on features
        np.testing.assert_allclose(histories[True][key][:2], histories[False][key][:2], rtol=1e-4, atol=1e-5)
    assert np.isfinite(histories[True]["loss"][2])
