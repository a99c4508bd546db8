"""The explore stage's TensorFlow jobs: what their scripts call (one function per rule).

Each configures TensorFlow (:func:`imgclf.core.runtime.configure`: seed, threads, determinism)
before importing it: keep TensorFlow imports inside the functions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


from imgclf.carbon import track_emissions
from imgclf.core import runtime
from imgclf.core.io import read_index
from imgclf.training.files import RunFiles, TrainingInputs, resolve_batch_size


def probe_batch_size(config: dict[str, Any], index: str | Path, train: str | Path, threads: int,
                     emissions: str | Path, log: logging.Logger) -> dict[str, Any]:
    """Rule probe_batch_size: training throughput per batch size, and the size chosen.

    Args:
        config: The validated config (``seed``, ``data``, ``model``, ``train``, ``batch_probe``).
        index: The index; train: the training manifest the epochs are counted on.
        threads: The job's threads. emissions: its emissions record.
        log: The job's logger.

    Returns:
        ``batch_size``: the measurements, the choice and the runtime settings.
    """
    with track_emissions(emissions, "explore", "batch_size_probe", config["carbon"], log):
        settings = runtime.configure(config["seed"], threads)
        from imgclf.explore.probe import probe_batch_sizes
        from imgclf.training.inputs import infer_channels
        from imgclf.training.models import build_model

        table = read_index(index)
        n_classes = table["label"].nunique()
        shape = (*config["data"]["image_size"], infer_channels(table, config["data"]["channels"]))
        probe = config["batch_probe"]
        runtime.set_precision(config["train"]["mixed_precision"], settings["gpus"], log)
        result = probe_batch_sizes(lambda: build_model(config["model"], n_classes, shape), shape, n_classes,
                                   probe["sizes"], probe["steps"], probe["min_gain"], len(read_index(train)),
                                   config["train"], probe["min_steps_per_epoch"], log)
        result["runtime"] = settings
    log.info("chosen batch size: %d", result["chosen"])
    return {"batch_size": result}


def explore_point(config: dict[str, Any], study: str, point: str, overrides: dict[str, Any], label: str,
                  inputs: TrainingInputs, files: RunFiles, batch_size_file: str | Path | None, threads: int,
                  carbon: dict[str, Any], emissions: str | Path, log: logging.Logger) -> dict[str, Any]:
    """Rule explore_point: one training run of a study's point.

    Args:
        config: The point's config (the study's fixed and the point's values applied).
        study, point: The point's study and id (``p00``...). overrides, label: its values.
        inputs: The exploration fold. files: Where the run writes as it trains.
        batch_size_file: The probe's record (with ``train.batch_size: auto``).
        threads, carbon, emissions: The job's threads, the carbon settings, its emissions record.
        log: The job's logger.

    Returns:
        ``curves``, ``weight_histograms`` and ``metrics`` (last).
    """
    with track_emissions(emissions, "explore", f"{study}/{point}", carbon, log):
        settings = runtime.configure(config["seed"], threads)
        from imgclf.training.run import run_outputs, run_training

        batch_size = resolve_batch_size(config["train"]["batch_size"], batch_size_file)
        log.info("%s (batch size %d)", label, batch_size)
        metrics = run_training(config, inputs, files, batch_size, log)
    metrics.update(study=study, point=point, overrides=overrides, runtime=settings)
    return run_outputs(metrics, files, f"{study}/{point}: {label}", point, log)
