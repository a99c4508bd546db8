"""Tuning core: search-space checks, resume without redoing trials, seeded sequence."""

import pytest

from imgclf.training import runtime

runtime.configure(0, 1)

from imgclf.config import validate_config  # noqa: E402
from imgclf.errors import ConfigError  # noqa: E402
from imgclf.training.inputs import make_dataset, read_manifest  # noqa: E402
from imgclf.search_space import apply_values, check_search_space  # noqa: E402
from imgclf.tuning import ImgclfHyperModel, best_hyperparameters, make_tuner, trials_table  # noqa: E402

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
                apply_values(base_config(), space, {parameter["name"]: value})


def datasets(fold):
    manifest_train = read_manifest(fold.train_manifest, fold.data_root, ["a", "b", "c"])
    manifest_val = read_manifest(fold.val_manifest, fold.data_root, ["a", "b", "c"])
    return (make_dataset(manifest_train, (32, 32), 3, 16, True, 1),
            make_dataset(manifest_val, (32, 32), 3, 16, False, 1))


def search(fold, directory, max_trials, calls=None):
    config = base_config()
    hypermodel = ImgclfHyperModel(config, SPACE, 3, (32, 32, 3), "val_accuracy")
    if calls is not None:
        original = hypermodel.fit

        def counting_fit(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        hypermodel.fit = counting_fit
    tuner = make_tuner("bayesian", hypermodel, "val_accuracy", max_trials, seed=7, directory=directory,
                       project_name="tune")
    train, val = datasets(fold)
    tuner.search(train, validation_data=val, verbose=0)
    return tuner


def test_two_trials_resume_without_redoing_the_first_and_repeat_with_the_seed(fold, tmp_path):
    first = search(fold, tmp_path / "a", max_trials=1)
    assert len(first.oracle.trials) == 1
    calls = []
    resumed = search(fold, tmp_path / "a", max_trials=2, calls=calls)  # a new tuner on the same folder
    assert len(calls) == 1 and len(resumed.oracle.trials) == 2
    table = trials_table(resumed, SPACE, "val_accuracy")
    assert list(table.columns[:2]) == ["trial", "status"] and table["val_accuracy"].notna().all()
    assert (table["epochs_run"] == 1).all() and (table["trial_seconds"] > 0).all()
    inactive = table["train.optimizer"] == "adam"
    assert table.loc[inactive, "train.momentum"].isna().all()  # only active for sgd
    again = search(fold, tmp_path / "b", max_trials=2)
    keys = ["train.optimizer", "train.learning_rate", "model.dropout"]
    assert trials_table(again, SPACE, "val_accuracy")[keys].equals(table[keys])
    assert set(best_hyperparameters(resumed)) >= {"train.optimizer", "train.learning_rate", "model.dropout"}


def test_zero_budget_and_missing_objective_are_errors(fold, tmp_path):
    hypermodel = ImgclfHyperModel(base_config(), SPACE, 3, (32, 32, 3), "val_auc")
    with pytest.raises(ConfigError, match="at least one trial"):
        make_tuner("bayesian", hypermodel, "val_auc", 0, 1, tmp_path, "t")
    import keras_tuner as kt
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    train, val = datasets(fold)
    with pytest.raises(ConfigError, match="'val_auc' is never computed"):
        hypermodel.fit(hp, model, train, validation_data=val)
