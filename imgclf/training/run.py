"""One training run from fold manifests: what a training rule calls.

Call :func:`imgclf.core.runtime.configure` before importing this module
(it imports TensorFlow).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from imgclf.core.io import read_index
from imgclf.core.objectives import check_metric_name
from imgclf.training.cache import job_cache, resolve_cache, without_neutral_keys
from imgclf.training.devices import strategy_scope, training_devices
from imgclf.training.inputs import (augmentation_layers, class_weights, infer_channels, make_dataset,
                                    read_manifest)
from imgclf.training.features import FeatureSource, uses_features
from imgclf.training.files import RunFiles, TrainingInputs
from imgclf.training.loop import train
from imgclf.training.models import build_model, is_pretrained
from imgclf.core.runtime import set_precision, visible_gpus


def run_training(config: dict[str, Any], inputs: TrainingInputs, files: RunFiles, batch_size: int,
                 log: Any = None, job_memory_mb: float | None = None,
                 devices: list[str] | None = None) -> dict[str, Any]:
    """Train the configured model on one fold and return its metrics.

    Args:
        config: The validated config (with any exploration overrides applied).
        inputs: Index, manifests and data root.
        files: Where the loop writes history, best weights, weight samples, resume state.
        batch_size: The batch size (the probe's, or the configured one): the global batch,
            split across the devices when ``train.gpus_per_job`` is above 1.
        log: Logger.
        job_memory_mb: The memory the job was given (the rule's mem_mb), for ``train.cache: auto``.
        devices: The devices ``train.gpus_per_job`` picks from (the GPUs this job sees by default).

    Returns:
        A JSON-ready dict: status, best epoch and value, the monitored and
        objective metrics at the best epoch, epochs run, whether the run resumed
        (``resumed``) or threw a corrupt resume state away (``resume_discarded``),
        timings, settings, the input cache (``cache``) and the training devices.

    Raises:
        ImgclfError: Bad manifests (missing or changed images), unusable model settings,
            or a diverged run when ``train.on_divergence`` is fail; train.gpus_per_job above the
            GPUs visible; a disk cache without a usable directory or room.
    """
    from imgclf.core.errors import ImgclfError

    index = read_index(inputs.index)
    class_names = sorted(index["label"].unique())
    # A monitor naming an absent class fails before any image is decoded.
    check_metric_name("train.early_stopping.monitor", config["train"]["early_stopping"]["monitor"], class_names)
    image_size = tuple(config["data"]["image_size"])
    channels = infer_channels(index, config["data"]["channels"])
    train_manifest = read_manifest(inputs.train_manifest, inputs.data_root, class_names)
    val_manifest = read_manifest(inputs.val_manifest, inputs.data_root, class_names)
    model_config, train_config = config["model"], config["train"]
    input_shape = (*image_size, channels)
    chosen_devices = training_devices(train_config["gpus_per_job"], devices)
    precision = set_precision(train_config["mixed_precision"], visible_gpus(), log)
    # Build once before any data is decoded: a bad architecture or weights file fails fast.
    build_model(model_config, len(class_names), input_shape)
    cache = resolve_cache(train_config, len(train_manifest.paths) + len(val_manifest.paths), image_size, channels,
                          job_memory_mb, log)
    with job_cache(cache) as cached, strategy_scope(chosen_devices, log):
        try:
            model, result = _train(config, class_names, input_shape, train_manifest, val_manifest, batch_size,
                                   files, precision, cached, log)
        except tf.errors.OpError as error:
            if cache.mode != "disk" or cache.directory is None or cache.directory not in str(error):
                raise
            # The disk filled up (or a quota or file-size limit hit) while the cache was written:
            # its directory goes with the job; nothing half-written is read again.
            raise ImgclfError(f"train.cache: the disk cache in {cache.directory} could not be written "
                              f"({error.message.splitlines()[0]})",
                              "free space there, set train.cache_dir to a larger disk, or set "
                              "train.cache: none (or memory)") from None
    if result.status == "diverged" and train_config["on_divergence"] == "fail":
        raise ImgclfError(result.message, "see the curves and weight histograms of this run")
    if files.model is not None:
        model.save(files.model)
    history = result.history
    best_row = {}
    if result.best_epoch is not None and not history.empty:
        best_row = history.loc[history["epoch"] == result.best_epoch].iloc[0].to_dict()
    return {
        "status": result.status,
        "message": result.message,
        "monitor": result.monitor,
        "best_epoch": result.best_epoch,
        "best_value": result.best_value,
        "at_best_epoch": {k: float(v) for k, v in best_row.items() if isinstance(v, (int, float, np.floating))},
        "epochs_run": int(len(history)),
        "phases": result.phases,
        # Whether this run continued an interrupted one ({"from_epoch": N, "phase": P}) or started
        # afresh (None): a resumed run is not bit-identical to an uninterrupted one.
        "resumed": result.resumed,
        # Why a corrupt or partial resume state was thrown away (the run then started afresh), or None.
        "resume_discarded": result.resume_discarded,
        "seconds": round(result.seconds, 2),
        "batch_size": batch_size,
        "image_size": list(image_size),
        "channels": channels,
        "classes": class_names,
        "n_train": len(train_manifest.paths),
        "n_val": len(val_manifest.paths),
        "parameters": int(model.count_params()),
        "precision": precision,
        "cache": cache.record(),
        "devices": chosen_devices or None,
    }


def _train(config: dict[str, Any], class_names: list[str], input_shape: tuple[int, int, int],
           train_manifest: Any, val_manifest: Any, batch_size: int, files: RunFiles, precision: str,
           cache: bool | str, log: Any) -> tuple[Any, Any]:
    """The datasets and the training loop of :func:`run_training` (inside its cache and devices)."""
    model_config, train_config = config["model"], config["train"]
    image_size, channels, seed = input_shape[:2], input_shape[2], config["seed"]
    augment = augmentation_layers(train_config["augmentation"], seed)
    # augmentation.during: fine_tune leaves phase 1 on plain images (or on their features).
    phase1_augmented = augment is not None and train_config["augmentation"]["during"] == "all"
    balanced = train_config["sampling"] == "balanced"
    train_data = make_dataset(train_manifest, image_size, channels, batch_size, True, seed, augment, cache=cache,
                              balanced=balanced)
    val_data = make_dataset(val_manifest, image_size, channels, batch_size, False, seed, cache=cache)
    weights = class_weights(train_manifest.labels, len(class_names), train_config["class_weights"])
    settings = {"model": model_config, "train": without_neutral_keys(train_config), "seed": seed, "batch_size": batch_size,
                "precision": precision,
                "image_size": tuple(image_size), "channels": channels, "classes": class_names,
                "pretrained": is_pretrained(model_config),
                "train_manifest": train_manifest.table["sha256"].tolist(),
                "val_manifest": val_manifest.table["sha256"].tolist()}
    features, phase1_data = None, None
    if uses_features(model_config, train_config, phase1_augmented):
        features = FeatureSource(make_dataset(train_manifest, image_size, channels, batch_size, False, seed,
                                              cache=cache),
                                 train_manifest.labels, val_data, val_manifest.labels, batch_size, seed, balanced)
    elif augment is not None and not phase1_augmented:
        phase1_data = make_dataset(train_manifest, image_size, channels, batch_size, True, seed, cache=cache,
                                   balanced=balanced)
    if augment is not None and not phase1_augmented and log:
        log.info("augmentation in phase 2 (fine-tuning) only: train.augmentation.during is fine_tune")
    return train(lambda: build_model(model_config, len(class_names), input_shape),
                 train_data, val_data, train_config, files, settings, weights, seed, log, features,
                 phase1_data, val_manifest.labels)


def run_outputs(metrics: dict[str, Any], files: RunFiles, title: str, name: str, log: Any) -> dict[str, Any]:
    """What every training job writes once its run is over: the curves, the weight histograms and,
    last, the metrics (by the rules' output names); its outcome is logged.

    Args:
        metrics: :func:`run_training`'s metrics, completed by the job.
        files: The run's files (its history and weight samples are read).
        title: The figures' title. name: The run's name in the log.
        log: The job's logger.
    """
    from imgclf.training.plots import plot_curves, plot_weight_histograms

    if metrics["status"] == "diverged":
        log.warning("%s", metrics["message"])
    log.info("%s: %s, best epoch %s, %s = %s", name, metrics["status"], metrics["best_epoch"], metrics["monitor"],
             metrics["best_value"])
    return {"curves": plot_curves(pd.read_csv(files.history), title),
            "weight_histograms": plot_weight_histograms(files.weight_samples, title), "metrics": metrics}
