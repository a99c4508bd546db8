"""Final trainings and the sealed test set: what needs no TensorFlow.

The final trainings retrain the chosen configuration once per seed. Their
config is the experiment's ``seed``/``data``/``model``/``train`` sections
with the tuning result applied (the exploration winner the search started
from, then the best trial's values). The *decisions* behind a final model
are that config and the manifests it trains and validates on; their hash is
what seals the test set (:mod:`imgclf.evaluate.seal`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from imgclf.core.errors import ConfigError
from imgclf.evaluate import check_target_definitions
from imgclf.core.io import json_sha256, read_json, sha256_file
from imgclf.core.objectives import resolve_monitor
from imgclf.training.cache import without_neutral_keys
from imgclf.tune import apply_values

#: The config sections a training run reads: only these are rule params, so that
#: changing a later stage's settings does not rerun trainings.
TRAINING_SECTIONS = ("seed", "data", "model", "train")


def final_seeds(config: dict[str, Any]) -> list[int]:
    """The seeds of the final trainings: ``final.seeds``, or seed, seed+1, ..."""
    final = config["final"]
    if final["seeds"]:
        return [int(s) for s in final["seeds"]]
    return [config["seed"] + i for i in range(final["n_seeds"])]


def final_fold(config: dict[str, Any], seed: int) -> int:
    """The fold a final training uses: ``final.fold``, or the seed's rank modulo the folds."""
    final = config["final"]
    if final["folds"] == "one":
        return final["fold"]
    return final_seeds(config).index(seed) % config["split"]["n_folds"]


def training_config(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """The part of the config a final training reads, with its own seed and epochs and the
    early-stopping monitor resolved (:func:`imgclf.core.objectives.resolve_monitor`)."""
    result = {key: copy.deepcopy(config[key]) for key in TRAINING_SECTIONS}
    result["seed"] = seed
    # auto follows the targets, which the training sections lack: resolved here, so that the
    # monitor is one of the decisions the seal records.
    result["train"]["early_stopping"]["monitor"] = resolve_monitor(config)["name"]
    if config["final"]["epochs"] is not None:
        result["train"]["epochs"] = config["final"]["epochs"]
    return result


def apply_tuning_result(config: dict[str, Any], best: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A final training's config with the tuning result applied.

    Args:
        config: A :func:`training_config`.
        best: The content of ``best_hyperparameters.json``, or None without tuning.

    Returns:
        The config (validated) and the values applied, by dotted key. Epochs
        stay the final training's own: tuning's shorter budget is not one of
        its decisions.
    """
    if not best:
        return config, {}
    values = {**best.get("fixed_from_study", {}), **best.get("hyperparameters", {})}
    values.pop("train.epochs", None)
    result = apply_values(config, values, source="the final training config", origin="best_hyperparameters.json",
                          hint="rerun tuning with the current config")
    return result, values


def tuned_config(config: dict[str, Any], best_hyperparameters: str | Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A final training's config with the tuning result of ``best_hyperparameters.json`` applied
    (:func:`apply_tuning_result`); the config as it is without that file (tuning disabled).

    Used alike by the seal check before a final training and by the training itself, so that
    both judge the same decisions.
    """
    best = read_json(best_hyperparameters) if best_hyperparameters else None
    return apply_tuning_result(config, best)


def effective_settings(config: dict[str, Any], batch_size: int, threads: int,
                       pretrained_record: dict[str, Any] | None) -> dict[str, Any]:
    """What a final training uses beyond its config: the batch size it trains with (the
    probe's pick under ``train.batch_size: auto``), its thread counts, and the sha256 of the
    weights it starts from (the ImageNet file of the weights stage's record, or the file
    ``model.weights`` names). Each is a sealed decision: a change is named, never silent.

    Args:
        config: The final training's config (tuning applied).
        batch_size: The batch size resolved (:func:`imgclf.training.files.resolve_batch_size`).
        threads: The job's intra-op threads (inter-op is pinned to 1).
        pretrained_record: The weights stage's record (``weights.json``), when the run has one.
    """
    model = config["model"]
    weights = str(model["weights"])
    weights_sha256 = None
    if weights == "imagenet":
        files = (pretrained_record or {}).get("files", [])
        weights_sha256 = next((f["sha256"] for f in files if f["architecture"] == model["architecture"]), None)
    elif weights != "none" and Path(weights).is_file():
        weights_sha256 = sha256_file(weights)
    return {"batch_size": int(batch_size),
            "batch_size_from": "probe" if config["train"]["batch_size"] == "auto" else "config",
            "intra_op_threads": int(threads), "inter_op_threads": 1, "initial_weights_sha256": weights_sha256}


def decisions(config: dict[str, Any], train_manifest: str | Path, val_manifest: str | Path,
              effective: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a final model was decided from: its training config, its manifests' hashes and
    the settings it actually trains with (:func:`effective_settings`).

    Only the training sections: validation fills every other section with its
    defaults, and a new key in a later stage's schema must not look like a
    changed decision to the sealed test set. The training adds ``resumed`` once it has run
    (whether it continued from a resume state), which the evaluation's seal check compares too.
    """
    sections = {key: config[key] for key in TRAINING_SECTIONS}
    # Where decoded images are kept changes no number: not a decision (train.cache may differ
    # between a laptop and a cluster).
    sections["train"] = without_neutral_keys(sections["train"])
    record = {"config": sections,
              "train_manifest_sha256": sha256_file(train_manifest),
              "val_manifest_sha256": sha256_file(val_manifest)}
    if effective is not None:
        record["effective"] = effective
    return record


def fingerprint(record: dict[str, Any]) -> str:
    """A stable hash of a JSON-ready record (the decisions behind a final model)."""
    return json_sha256(record)


def check_final(config: dict[str, Any], class_names: list[str] | None) -> None:
    """Load-time checks of the final trainings and the targets.

    Args:
        config: The validated config.
        class_names: The data's classes, when they can be read cheaply (None: the
            evaluation checks them once the index exists).

    Raises:
        ConfigError: Naming the key at fault.
    """
    final = config["final"]
    n_folds = config["split"]["n_folds"]
    if final["folds"] == "rotate" and n_folds == 1:
        raise ConfigError("final.folds is rotate, but split.n_folds is 1: there is nothing to rotate over",
                          "set final.folds: one, or split.n_folds to 2 or more")
    check_target_definitions(config["targets"], class_names)
