"""Bayesian tuning with Keras Tuner (rule tune).

The search space is declared in config as a list of parameters named by
dotted config keys (``train.learning_rate``, ``model.dropout``,
``train.fine_tune.unfreeze_layers``...), each Int, Float (linear or log),
Choice or Boolean, optionally active only when another parameter takes given
values (``when``). Keras Tuner's oracle proposes the values; each trial
applies them to the config and trains, in a process of its own
(:mod:`imgclf.tune.trial`), exactly as a final training would: phase 1
(head on a frozen pretrained backbone, or the whole model from scratch),
then, when enabled, phase 2 (fine-tune the top layers at a low rate), so the
two-phase transfer schedule itself is tunable, which Keras Tuner does not
offer by itself.

Call :func:`imgclf.core.runtime.configure` before importing this module.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras_tuner as kt
import pandas as pd

from imgclf.core.errors import ConfigError, ImgclfError
from imgclf.core.io import atomic_write_text
from imgclf.core.objectives import direction, resolve_monitor, resolve_objective, with_resolved_monitor
from imgclf.tune.search_space import apply_values, check_search_space, subsample, values_key
from imgclf.core.runtime import memory_mb
from imgclf.training.cache import without_neutral_keys
from keras_tuner.src import utils as _kt_utils


def _save_json_atomically(path: str, obj: Any) -> str:
    """Keras Tuner's ``save_json``, written atomically and flushed to disk: a job killed while
    the tuner saves its state (oracle.json, trial.json) leaves the previous file, not an empty
    one that the resumed search cannot read."""
    text = json.dumps(obj)
    atomic_write_text(path, text, fsync=True)
    return text


_kt_utils.save_json = _save_json_atomically

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


class TrialError(ImgclfError, kt.errors.FatalError):
    """A trial failed: Keras Tuner stops the search (no retry), the job fails with the message."""


@dataclass
class TrialRunner:
    """Runs each trial in a process of its own (:mod:`imgclf.tune.trial`).

    Attributes:
        config: The trial config before the trial's values (epochs = tune.epochs).
        space: The search space.
        data: What every trial reads: manifests, data root, classes, input size,
            batch size, objective, seed and threads.
        directory: Where the requests, results and histories of the trials are kept.
        log: A logger for one line per trial, or None.
    """

    config: dict[str, Any]
    space: list[dict[str, Any]]
    data: dict[str, Any]
    directory: Path
    log: Any = None
    total: int = 0  # the search's budget in trials, for the log
    started: int = 0  # trials started so far (those done before a resume included)

    def run(self, hp: kt.HyperParameters) -> dict[str, float]:
        """Declare the space on ``hp``, train the trial in a child process, return its metrics."""
        values = define(hp, self.space)
        self.started += 1
        config = apply_values(self.config, values)
        if hp.values.get("tuner/epochs"):  # Hyperband's budget for this trial
            config["train"]["epochs"] = int(hp.values["tuner/epochs"])
        key = values_key(hp.values)
        trials_dir = self.directory / "trials"
        trials_dir.mkdir(parents=True, exist_ok=True)
        request, result_path = trials_dir / f"{key}.request.json", trials_dir / f"{key}.result.json"
        request.write_text(json.dumps({**self.data, "config": config}, default=str), encoding="utf-8")
        result_path.unlink(missing_ok=True)
        package_parent = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (package_parent, os.environ.get("PYTHONPATH")) if p))
        started = time.monotonic()
        process = subprocess.run([sys.executable, "-m", "imgclf.tune.trial", str(request), str(result_path)],
                                 capture_output=True, text=True, env=env)
        result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else {}
        if process.returncode != 0 or "history" not in result:
            message = result.get("error") or f"the trial process ended with code {process.returncode}"
            detail = "" if result.get("user_error") else "\n" + (result.get("traceback") or process.stderr[-3000:])
            raise TrialError(f"tuning trial {values} failed: {message}{detail}",
                             "fix the cause; a rerun resumes the search without redoing finished trials")
        history = result["history"]
        histories = self.directory / "histories"
        histories.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame(history)
        table.insert(0, "epoch", range(1, len(table) + 1))
        table.to_csv(histories / f"{key}.csv", index=False)
        objective = self.data["objective"]
        series = history[objective]
        best = (max if direction(objective) == "max" else min)(range(len(series)), key=series.__getitem__)
        metrics = {k: float(v[best]) for k, v in history.items() if len(v) > best}
        metrics.update(epochs_run=float(len(series)), best_epoch=float(best + 1),
                       trial_seconds=time.monotonic() - started, trial_peak_rss_mb=float(result["peak_rss_mb"]),
                       rss_mb=memory_mb()["rss_mb"])
        if self.log:
            self.log.info("trial %d of %d %s: %s = %.4f at epoch %d of %d (%.0f s; trial process peak %.0f MB, "
                          "tuner %.0f MB)", self.started, self.total,
                          {k: float(round(v, 6)) if isinstance(v, float) else v for k, v in values.items()}, objective,
                          series[best], best + 1, len(series), metrics["trial_seconds"],
                          metrics["trial_peak_rss_mb"], metrics["rss_mb"])
        return metrics


class _IsolatedTrials:
    """Keras Tuner's black-box mode: the oracle proposes, :class:`TrialRunner` trains."""

    runner: TrialRunner

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        return self.runner.run(trial.hyperparameters)


class _Bayesian(_IsolatedTrials, kt.BayesianOptimization):
    pass


class _Random(_IsolatedTrials, kt.RandomSearch):
    pass


class _Hyperband(_IsolatedTrials, kt.Hyperband):
    pass


def make_tuner(algorithm: str, runner: TrialRunner, objective: str, max_trials: int, seed: int,
               directory: str | Path, project_name: str, max_epochs: int = 10) -> kt.Tuner:
    """Keras Tuner's BayesianOptimization, Hyperband or RandomSearch, resuming from ``directory``."""
    if max_trials < 1:
        raise ConfigError(f"tune.max_trials is {max_trials}", "give a budget of at least one trial")
    target = kt.Objective(objective, direction(objective))
    common = {"hypermodel": None, "objective": target, "seed": seed, "directory": str(directory),
              "project_name": project_name, "overwrite": False, "max_consecutive_failed_trials": 1}
    if algorithm == "bayesian":
        tuner = _Bayesian(max_trials=max_trials, **common)
    elif algorithm == "random":
        tuner = _Random(max_trials=max_trials, **common)
    elif algorithm == "hyperband":
        tuner = _Hyperband(max_epochs=max_epochs, **common)
    else:
        raise ConfigError(f"unknown tune.algorithm {algorithm!r}", "use bayesian, hyperband or random")
    tuner.runner = runner
    return tuner


def trials_table(tuner: kt.Tuner, space: list[dict[str, Any]], objective: str) -> pd.DataFrame:
    """Every trial: id, status, hyperparameters, objective, epochs run, best epoch, duration, the
    peak memory of the trial's process and the tuner's resident memory after it (flat over trials)."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        metrics = trial.metrics
        row: dict[str, Any] = {"trial": trial_id, "status": str(trial.status)}
        for parameter in space:
            name = parameter["name"]
            row[name] = trial.hyperparameters.values.get(name) if trial.hyperparameters.is_active(name) else None
        for key in (objective, "epochs_run", "best_epoch", "trial_seconds", "trial_peak_rss_mb", "rss_mb"):
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


def search_settings(trial_config: dict[str, Any], data: dict[str, Any], train_manifest_text: str,
                    val_manifest: str | Path) -> dict[str, Any]:
    """What a search's finished trials depend on: all but the budget of trials.

    Raising ``tune.max_trials`` continues a search; anything else here (the space, the
    epochs, the data, the seed, the model...) makes its trials incomparable.
    """
    import hashlib

    from imgclf.core.io import sha256_file

    # Only what a trial reads: a report or carbon setting, the folder the data sits in or the
    # job's thread count (a rerun with --cores 1) must not discard finished trials.
    config = {key: copy.deepcopy(trial_config[key]) for key in ("seed", "data", "model", "train", "tune")}
    config["train"] = without_neutral_keys(config["train"])  # where images are cached changes no trial
    config["tune"].pop("max_trials", None)
    ignored = ("data_root", "threads", "cpus", "job_memory_mb")
    kept = {k: v for k, v in data.items() if not k.endswith("_manifest") and k not in ignored}
    return {"config": config, "data": kept,
            "train_manifest_sha256": hashlib.sha256(train_manifest_text.encode()).hexdigest(),
            "val_manifest_sha256": sha256_file(val_manifest)}


def start_afresh_if_changed(directory: Path, settings: dict[str, Any], log: Any = None) -> None:
    """Empty a search folder left by a search with other settings; record the current ones.

    Keras Tuner would otherwise resume the old search and count its trials as done.
    """
    import shutil


    marker = directory / "search_settings.json"
    text = json.dumps(settings, sort_keys=True, indent=1, default=str)
    stale = marker.is_file() and marker.read_text(encoding="utf-8") != text
    unknown = not marker.is_file() and directory.is_dir() and any(directory.iterdir())
    if stale or unknown:
        if log:
            log.warning("%s holds trials of %s settings: starting afresh", directory, "other" if stale else "unknown")
        for child in directory.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, text)


def run_tuning(config: dict[str, Any], inputs: Any, directory: Path, batch_size: int,
               log: Any = None, threads: int = 1, cpus: int | None = None,
               job_memory_mb: float | None = None) -> dict[str, Any]:
    """Search the configured space; resume from ``directory`` if a search was interrupted.

    Args:
        config: The validated config (with the exploration winner applied, if any).
        inputs: A :class:`imgclf.training.run.TrainingInputs` (index, manifests, data root).
        directory: Keras Tuner's folder (oracle, trials), the trials' requests, results and histories.
        batch_size: The batch size.
        log: Logger.
        threads: Intra-op threads of each trial's process (``threads.tune``).
        cpus: The job's CPUs (each trial's input pipeline). job_memory_mb: The job's memory
            (``train.cache: auto``).

    Returns:
        ``best`` (values by dotted key), ``table`` (DataFrame of trials), ``histories``
        (trial id to history DataFrame) and the search settings.
    """
    from imgclf.core.io import csv_text, read_index, write_csv
    from imgclf.training.inputs import infer_channels, read_manifest

    tune = config["tune"]
    space = tune["search_space"]
    check_search_space(space, config)
    objective = resolve_objective(config, "tune")
    if log:
        log.info("objective %s (%s); trials stop early by %s", objective["name"], objective["why"],
                 resolve_monitor(config)["name"])
    index = read_index(inputs.index)
    classes = sorted(index["label"].unique())
    channels = infer_channels(index, config["data"]["channels"])
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Every file's sha256 is checked here, once; the trials' processes trust the manifests.
    train = read_manifest(inputs.train_manifest, inputs.data_root, classes)
    val = read_manifest(inputs.val_manifest, inputs.data_root, classes)
    subsampled = directory / "train_subsample.csv"
    table = subsample(train.table, tune["data_fraction"], config["seed"])
    n_train = len(table)
    trial_config = with_resolved_monitor(copy.deepcopy(config))
    trial_config["train"]["epochs"] = tune["epochs"]
    data = {"train_manifest": str(subsampled), "val_manifest": str(inputs.val_manifest),
            "data_root": str(inputs.data_root), "classes": classes, "image_size": list(config["data"]["image_size"]),
            "channels": channels, "batch_size": batch_size, "objective": objective["name"], "seed": config["seed"],
            "threads": threads, "cpus": cpus, "job_memory_mb": job_memory_mb}
    start_afresh_if_changed(directory, search_settings(trial_config, data, csv_text(table), inputs.val_manifest), log)
    write_csv(subsampled, table)
    runner = TrialRunner(trial_config, space, data, directory, log)
    tuner = make_tuner(tune["algorithm"], runner, objective["name"], tune["max_trials"], config["seed"],
                       directory, "search", max_epochs=tune["epochs"])
    done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    runner.total, runner.started = tune["max_trials"], done
    if log:
        log.info("%s search: %d of %d trials already done; %d training images (%.0f%%), %d validation; "
                 "each trial in its own process", tune["algorithm"], done, tune["max_trials"], n_train,
                 100 * tune["data_fraction"], len(val.paths))
    tuner.search(verbose=0)
    trials = trials_table(tuner, space, objective["name"])
    histories = {}
    for trial_id, trial in tuner.oracle.trials.items():
        path = directory / "histories" / f"{values_key(trial.hyperparameters.values)}.csv"
        if path.is_file():
            histories[trial_id] = pd.read_csv(path)
    return {"best": best_hyperparameters(tuner), "table": trials, "histories": histories,
            "n_train": n_train, "n_val": len(val.paths), "classes": classes}
