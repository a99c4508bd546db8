"""Bayesian tuning with Keras Tuner (issue 4, core; not yet wired into the workflow).

The search space is declared in config as a list of parameters named by
dotted config keys (``train.learning_rate``, ``model.dropout``,
``train.fine_tune.unfreeze_layers``...), each Int, Float (linear or log),
Choice or Boolean, optionally active only when another parameter takes given
values (``when``). The HyperModel applies a trial's values to the config and
trains exactly as a final training would: phase 1 (head on a frozen
pretrained backbone, or the whole model from scratch), then, when enabled,
phase 2 (fine-tune the top layers at a low rate), so the two-phase transfer
schedule itself is tunable, which Keras Tuner does not offer by itself.

Call :func:`imgclf.training.runtime.configure` before importing this module.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import pandas as pd

from imgclf.errors import ConfigError
from imgclf.search_space import apply_values, check_search_space, subsample, values_key
from imgclf.training.loop import compile_model
from imgclf.training.models import freeze_backbone, unfreeze_top

def define(hp: kt.HyperParameters, space: list[dict[str, Any]]) -> dict[str, Any]:
    """Declare the space on ``hp`` and return the active values."""
    values: dict[str, Any] = {}
    for parameter in space:
        when = parameter.get("when")
        condition = {}
        if when:
            condition = {"parent_name": when["name"], "parent_values": list(when["values"])}
        name, kind = parameter["name"], parameter["type"]
        if kind == "int":
            hp_value = hp.Int(name, parameter["min"], parameter["max"], step=parameter.get("step", 1),
                              sampling=parameter.get("sampling", "linear"), **condition)
        elif kind == "float":
            hp_value = hp.Float(name, parameter["min"], parameter["max"],
                                sampling=parameter.get("sampling", "linear"), **condition)
        elif kind == "choice":
            hp_value = hp.Choice(name, parameter["values"], **condition)
        else:
            hp_value = hp.Boolean(name, **condition)
        if not when or values.get(when["name"]) in when["values"]:
            values[name] = hp_value
    return values


class ImgclfHyperModel(kt.HyperModel):
    """Builds and trains one trial: the configured model with the trial's values."""

    def __init__(self, config: dict[str, Any], space: list[dict[str, Any]], n_classes: int,
                 input_shape: tuple[int, int, int], objective: str, history_dir: Path | None = None) -> None:
        super().__init__(name="imgclf")
        self.config, self.space = config, space
        self.n_classes, self.input_shape, self.objective = n_classes, input_shape, objective
        self.history_dir = history_dir

    def _trial_config(self, hp: kt.HyperParameters) -> dict[str, Any]:
        return apply_values(self.config, self.space, define(hp, self.space))

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        from imgclf.training.models import build_model

        keras.backend.clear_session()  # a trial does not inherit the previous one's graph
        config = self._trial_config(hp)
        model = build_model(config["model"], self.n_classes, self.input_shape)
        if self._pretrained(config):
            freeze_backbone(model)
        compile_model(model, config["train"], config["train"]["learning_rate"])
        return model

    @staticmethod
    def _pretrained(config: dict[str, Any]) -> bool:
        return config["model"]["architecture"] != "small_cnn" and config["model"]["weights"] != "none"

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> dict[str, float]:
        config = self._trial_config(hp)
        train = config["train"]
        started = time.monotonic()
        callbacks = list(kwargs.pop("callbacks", []))  # Keras Tuner's own checkpointing
        monitor = train["early_stopping"]["monitor"]
        mode = "max" if "accuracy" in monitor else "min"
        extra: list[keras.callbacks.Callback] = []
        if train["early_stopping"]["enabled"]:
            extra.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                                       patience=train["early_stopping"]["patience"]))
        if train["reduce_lr"]["enabled"]:
            extra.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode,
                                                           factor=train["reduce_lr"]["factor"],
                                                           patience=train["reduce_lr"]["patience"],
                                                           min_lr=train["reduce_lr"]["min_lr"]))
        for owned in ("epochs", "verbose", "shuffle"):  # set here, per phase
            kwargs.pop(owned, None)
        history = model.fit(*args, epochs=train["epochs"], callbacks=callbacks + extra, shuffle=False,
                            verbose=0, **kwargs).history
        fine = train["fine_tune"]
        if self._pretrained(config) and fine["enabled"]:
            done = len(history["loss"])
            unfreeze_top(model, fine["unfreeze_layers"])
            compile_model(model, train, fine["learning_rate"])
            more = model.fit(*args, initial_epoch=done, epochs=done + fine["epochs"], shuffle=False,
                             callbacks=callbacks + extra, verbose=0, **kwargs).history
            history = {k: history.get(k, []) + more.get(k, []) for k in set(history) | set(more)}
        if self.objective not in history:
            raise ConfigError(f"tune.objective {self.objective!r} is never computed "
                              f"(computed: {', '.join(sorted(history))})",
                              "use val_accuracy or val_loss")
        if self.history_dir is not None:
            self.history_dir.mkdir(parents=True, exist_ok=True)
            table = pd.DataFrame(history)
            table.insert(0, "epoch", range(1, len(table) + 1))
            table.to_csv(self.history_dir / f"{values_key(hp.values)}.csv", index=False)
        values = history[self.objective]
        best = (max if self.objective.endswith("accuracy") else min)(range(len(values)), key=values.__getitem__)
        result = {k: float(v[best]) for k, v in history.items() if len(v) > best}
        result.update(epochs_run=float(len(values)), best_epoch=float(best + 1),
                      trial_seconds=time.monotonic() - started)
        return result


def make_tuner(algorithm: str, hypermodel: ImgclfHyperModel, objective: str, max_trials: int, seed: int,
               directory: str | Path, project_name: str, max_epochs: int = 10) -> kt.Tuner:
    """Keras Tuner's BayesianOptimization, Hyperband or RandomSearch, resuming from ``directory``."""
    if max_trials < 1:
        raise ConfigError(f"tune.max_trials is {max_trials}", "give a budget of at least one trial")
    target = kt.Objective(objective, "max" if objective.endswith("accuracy") else "min")
    common = {"objective": target, "seed": seed, "directory": str(directory), "project_name": project_name,
              "overwrite": False, "max_consecutive_failed_trials": 1}
    if algorithm == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if algorithm == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if algorithm == "hyperband":
        return kt.Hyperband(hypermodel, max_epochs=max_epochs, **common)
    raise ConfigError(f"unknown tune.algorithm {algorithm!r}", "use bayesian, hyperband or random")


def trials_table(tuner: kt.Tuner, space: list[dict[str, Any]], objective: str) -> pd.DataFrame:
    """Every trial: id, status, hyperparameters, objective, epochs run, best epoch, duration."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        metrics = trial.metrics
        row: dict[str, Any] = {"trial": trial_id, "status": str(trial.status)}
        for parameter in space:
            name = parameter["name"]
            row[name] = trial.hyperparameters.values.get(name) if trial.hyperparameters.is_active(name) else None
        for key in (objective, "epochs_run", "best_epoch", "trial_seconds"):
            row[key] = metrics.get_best_value(key) if metrics.exists(key) else None
        rows.append(row)
    return pd.DataFrame(rows)


def best_hyperparameters(tuner: kt.Tuner) -> dict[str, Any]:
    """The best trial's active values, by dotted config key."""
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise ConfigError("no tuning trial completed", "see the tuning log: every trial failed")
    hp = best[0].hyperparameters
    return {name: value for name, value in hp.values.items() if hp.is_active(name)}


def run_tuning(config: dict[str, Any], inputs: Any, directory: Path, batch_size: int,
               log: Any = None) -> dict[str, Any]:
    """Search the configured space; resume from ``directory`` if a search was interrupted.

    Args:
        config: The validated config (with the exploration winner applied, if any).
        inputs: A :class:`imgclf.training.run.TrainingInputs` (index, manifests, data root).
        directory: Keras Tuner's folder (oracle, trials, checkpoints) and trial histories.
        batch_size: The batch size.
        log: Logger.

    Returns:
        ``best`` (values by dotted key), ``table`` (DataFrame of trials), ``histories``
        (trial id to history DataFrame) and the search settings.
    """
    from imgclf.io import read_index
    from imgclf.training.inputs import Manifest, infer_channels, make_dataset, read_manifest

    tune = config["tune"]
    space = tune["search_space"]
    check_search_space(space, config)
    index = read_index(inputs.index)
    classes = sorted(index["label"].unique())
    channels = infer_channels(index, config["data"]["channels"])
    size = tuple(config["data"]["image_size"])
    train = read_manifest(inputs.train_manifest, inputs.data_root, classes)
    val = read_manifest(inputs.val_manifest, inputs.data_root, classes)
    table = subsample(train.table, tune["data_fraction"], config["seed"])
    keep = train.table["path"].isin(table["path"]).to_numpy()
    train = Manifest([p for p, k in zip(train.paths, keep) if k], train.labels[keep], table)
    train_data = make_dataset(train, size, channels, batch_size, True, config["seed"])
    val_data = make_dataset(val, size, channels, batch_size, False, config["seed"])
    trial_config = copy.deepcopy(config)
    trial_config["train"]["epochs"] = tune["epochs"]
    trial_config["train"]["on_divergence"] = "record"
    histories_dir = Path(directory) / "histories"
    hypermodel = ImgclfHyperModel(trial_config, space, len(classes), (*size, channels), tune["objective"],
                                  histories_dir)
    tuner = make_tuner(tune["algorithm"], hypermodel, tune["objective"], tune["max_trials"], config["seed"],
                       directory, "search", max_epochs=tune["epochs"])
    done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    if log:
        log.info("%s search: %d of %d trials already done; %d training images (%.0f%%), %d validation",
                 tune["algorithm"], done, tune["max_trials"], len(train.paths), 100 * tune["data_fraction"],
                 len(val.paths))
    tuner.search(train_data, validation_data=val_data, verbose=0)
    trials = trials_table(tuner, space, tune["objective"])
    histories = {}
    for trial_id, trial in tuner.oracle.trials.items():
        path = histories_dir / f"{values_key(trial.hyperparameters.values)}.csv"
        if path.is_file():
            histories[trial_id] = pd.read_csv(path)
    return {"best": best_hyperparameters(tuner), "table": trials, "histories": histories,
            "n_train": len(train.paths), "n_val": len(val.paths), "classes": classes}
