"""The export stage's TensorFlow jobs: what their scripts call (one function per rule).

Each configures TensorFlow (:func:`imgclf.core.runtime.configure`: seed, threads, determinism)
before importing it: keep TensorFlow imports inside the functions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core import runtime
from imgclf.core.errors import ImgclfError
from imgclf.core.io import read_index, read_json, sha256_file


def _agreement(predictions: str | Path, classes: list[str], reference: np.ndarray, paths: pd.Series) -> float:
    """How often the Keras model re-predicted here gives the class the evaluation recorded."""
    evaluated = pd.read_csv(predictions, dtype={"path": str, "predicted": str}, keep_default_na=False,
                            na_values=[""])
    here = pd.Series(np.asarray(classes)[reference.argmax(axis=1)], index=paths)
    return float((evaluated.set_index("path")["predicted"].reindex(here.index) == here).mean())


def _fold_manifest(manifests: Sequence[str], fold: int) -> str:
    """The manifest of ``fold`` among every fold's (their folder is ``fold_<k>``)."""
    found = next((p for p in manifests if Path(p).parent.name == f"fold_{fold}"), None)
    if found is None:
        raise ImgclfError(f"the deployed model was trained on fold {fold}, which the split no longer has",
                          "rerun the final trainings (the split changed since)")
    return found


def export_model(model: str | Path, deployed: str | Path, train_manifests: Sequence[str], audit_reference: str | Path,
                 test: str | Path, predictions: str | Path, index: str | Path, data_root: str | Path,
                 settings: dict[str, Any], tflite_files: Sequence[str], threads: int,
                 log: logging.Logger) -> dict[str, Any]:
    """Rule export_model: the deployed model as TFLite files, each measured against the Keras model
    on the test set (accuracy, per-group deltas, CPU latency). Nothing is written before every
    format is converted and measured.

    Args:
        model, deployed: The deployed model and its record.
        train_manifests: Every fold's training manifest (the int8 calibration images are drawn
            from the deployed model's fold).
        audit_reference: The manifest whose images set the bias audit's slice edges.
        test, predictions: The test manifest and the evaluation's predictions of this model.
        index, data_root: The index and the images' folder.
        settings: What the export reads of the config (:func:`imgclf.export.export_settings`).
        tflite_files: The TFLite outputs, one per format in ``settings["formats"]`` order (named
            in the measurements).
        threads: The job's threads. log: The job's logger.

    Returns:
        ``tflite`` (the files' bytes, in format order), ``markdown`` and ``export`` (last).
    """
    info = runtime.configure(settings["seed"], threads)
    from imgclf.export import tflite as export
    from imgclf.training.inputs import check_files, read_manifest
    from imgclf.training.predict import load_model

    formats = export.check_formats(settings["formats"])
    record = read_json(deployed)
    classes, size, channels, fold = record["classes"], tuple(record["image_size"]), record["channels"], record["fold"]
    train_path = _fold_manifest(train_manifests, fold)
    # Only the drawn calibration images are read, so only theirs are checked against the manifest.
    train = read_manifest(train_path, data_root, classes, verify=False)
    drawn = train.subset(export.representative_indices(train.labels, settings["representative_images"],
                                                       settings["seed"]))
    check_files(drawn.table, data_root, train_path)
    representative = export.load_pixels(drawn, size, channels)
    tested = read_manifest(test, data_root, classes)
    images = export.load_pixels(tested, size, channels)
    groups = export.audit_groups(read_index(index), tested.table["path"], read_index(audit_reference)["path"],
                                 settings["groups"])
    log.info("%d test images, %d int8 calibration images from %s; %d audit columns", len(images),
             len(representative), train_path, groups.shape[1])
    keras_model = load_model(model)
    reference = export.keras_proba(keras_model, images)
    agreement = _agreement(predictions, classes, reference, tested.table["path"])
    if agreement < 1:
        log.warning("the Keras model's classes here agree with the evaluation's predictions (%s) on %.4f of the "
                    "test images only (numerical differences between batch sizes)", predictions, agreement)
    min_group = settings["groups"]["audit"]["min_group_size"]
    contents, result = export.export_formats(keras_model, formats, representative, images, tested.labels, groups,
                                             min_group, settings["threads"], settings["latency_runs"], log,
                                             reference=reference)
    paths = dict(zip(formats, tflite_files))
    for fmt, entry in result["formats"].items():
        entry["file"] = str(paths[fmt])
    result["keras"].update(file=str(model), bytes=Path(model).stat().st_size, sha256=sha256_file(model),
                           agreement_with_evaluation=agreement)
    from imgclf.training.ensemble import ensemble_members

    members = ensemble_members(keras_model)
    if members:  # an ensemble's size and latency against one of its members'
        result["ensemble_of"] = len(members)
        result["ensemble_member"] = export.member_figures(members[0], images[:1], settings["threads"],
                                                          settings["latency_runs"])
    per_class = {classes[c]: int(n) for c, n in zip(*np.unique(drawn.labels, return_counts=True))}
    result.update(
        seed=record["chosen"]["seed"], fold=fold, classes=classes, image_size=list(size), channels=channels,
        n_test=len(images), group_columns=list(groups.columns),
        representative={"n": len(drawn.paths), "manifest": str(train_path), "seed": settings["seed"],
                        "per_class": per_class},
        latency={"threads": settings["threads"], "runs": settings["latency_runs"], "warmup": export.WARMUP_RUNS,
                 "cpu": info["cpu"], "tensorflow_threads": threads},
        thresholds={"max_accuracy_drop": export.MAX_ACCURACY_DROP, "max_group_drop": export.MAX_GROUP_DROP,
                    "min_group_size": min_group},
        tensorflow=info["tensorflow"])
    for finding in result["findings"]:
        log.warning("%s", finding["message"])
    log.info("%d formats exported; Keras model: accuracy %.4f, latency median %.3f ms", len(contents),
             result["keras"]["accuracy"], result["keras"]["latency_ms"]["median"])
    return {"tflite": [contents[fmt] for fmt in formats], "markdown": export.export_markdown(result),
            "export": result}
