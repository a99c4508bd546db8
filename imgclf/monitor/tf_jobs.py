"""The monitor stage's TensorFlow jobs: what their scripts call (one function per rule).

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
from imgclf.core.io import read_index, read_json
from imgclf.core.job import progress_logger
from imgclf.monitor.batches import (
    STAT_COLUMNS,
    drift_markdown,
    drift_report,
    inspect_batch,
    list_batch,
    stratified_draw,
)

#: Images per prediction batch (the drift reference and the batches).
PREDICT_BATCH = 64


def _predictions(paths: Any, labels: Any, proba: np.ndarray, classes: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"path": paths, "label": labels, "predicted": [classes[i] for i in proba.argmax(1)],
                         "confidence": proba.max(1).round(6)})


def monitor_reference(model: str | Path, deployed: str | Path, index: str | Path, train: Sequence[str],
                      val: Sequence[str], data_root: str | Path, reference_images: int, seed: int, threads: int,
                      log: logging.Logger) -> dict[str, Any]:
    """Rule monitor_reference: what new batches are compared with: the deployed model's training
    images' statistics, and its embeddings and predictions of a drawn share of its validation images.

    Args:
        model, deployed: The deployed model and its record (its fold).
        index: The index. train, val: Every fold's manifests (the deployed fold's are used).
        data_root: The images' folder. reference_images: ``monitor.reference_images``.
        seed: The experiment's seed (the draw). threads: The job's threads.
        log: The job's logger.

    Returns:
        ``statistics``, ``embeddings`` (arrays by name) and ``predictions``.
    """
    runtime.configure(seed, threads)
    from imgclf.training.inputs import check_files, read_manifest
    from imgclf.training.predict import load_model, predict_with_embeddings

    card = read_json(deployed)
    fold, classes = card["fold"], card["classes"]
    table = read_index(index)
    statistics = table[table["path"].isin(set(read_index(train[fold])["path"]))]
    # Only the drawn images are read, so only theirs are checked against the manifest.
    validation = read_manifest(val[fold], data_root, classes, verify=False)
    drawn = stratified_draw(validation.table, reference_images, seed)
    keep = validation.table.reset_index().merge(drawn[["path"]], on="path")["index"].to_numpy()
    manifest = validation.subset(keep)
    check_files(manifest.table, data_root, val[fold])
    embeddings, proba = predict_with_embeddings(load_model(model), manifest, tuple(card["image_size"]),
                                                card["channels"], PREDICT_BATCH)
    log.info("reference: %d training images' statistics (fold %d); embeddings (%d features) and predictions "
             "of %d of its %d validation images", len(statistics), fold, embeddings.shape[1], len(keep),
             len(validation.paths))
    return {"statistics": statistics[[c for c in STAT_COLUMNS if c in statistics]],
            "embeddings": {"embeddings": embeddings},
            "predictions": _predictions(manifest.table["path"].to_numpy(), manifest.table["label"].to_numpy(), proba,
                                        classes)}


def monitor_batch(name: str, batch: dict[str, Any], model: str | Path, deployed: str | Path,
                  reference_statistics: str | Path, reference_embeddings: str | Path,
                  reference_predictions: str | Path, settings: dict[str, Any], validation: dict[str, Any],
                  seed: int, threads: int, log: logging.Logger) -> dict[str, Any]:
    """Rule monitor_batch: one batch of new images against the reference: image statistics,
    embeddings, predictions and (when labelled) performance, each with its verdict, and the
    recommended action.

    Args:
        name, batch: The batch's name and settings (``monitor.batches.<name>``).
        model, deployed: The deployed model and its record.
        reference_statistics, reference_embeddings, reference_predictions: The reference.
        settings: The ``monitor`` section (tests, thresholds). validation: How bad files are handled.
        seed: The experiment's seed. threads: The job's threads (image inspection and TensorFlow).
        log: The job's logger.

    Returns:
        ``images`` (one row per image), ``plot``, ``markdown`` and ``report`` (last).
    """
    runtime.configure(seed, threads)
    from imgclf.data import ValidationOptions
    from imgclf.monitor.plots import plot_drift
    from imgclf.training.inputs import Manifest
    from imgclf.training.predict import load_model, predict_with_embeddings

    card = read_json(deployed)
    classes = card["classes"]
    listing = list_batch(name, batch)
    log.info("batch %s: %d files (%s, %s)", name, len(listing.entries), listing.source,
             "labelled" if listing.labelled else "unlabelled")
    options = ValidationOptions(**{**validation, "image_size": tuple(card["image_size"])})
    images, dropped = inspect_batch(listing, options, workers=threads, progress=progress_logger(log, "images inspected"))
    for item in dropped:
        log.warning("dropped %s: %s (%s)", item["path"], item["problem"], item["detail"])
    manifest = Manifest([str(listing.root / p) for p in images["path"]], np.zeros(len(images), np.int32), images)
    embeddings, proba = predict_with_embeddings(load_model(model), manifest, tuple(card["image_size"]),
                                                card["channels"], PREDICT_BATCH)
    predictions = _predictions(images["path"], images["label"], proba, classes)
    reference_images = read_index(reference_statistics)
    # keep_default_na off: a class named NA stays a class.
    reference = pd.read_csv(reference_predictions, dtype={"label": str, "predicted": str}, keep_default_na=False,
                            na_values=[""])
    test = card["test"]
    report = drift_report(reference_images, images, np.load(reference_embeddings)["embeddings"], embeddings,
                          reference, predictions, classes,
                          {"correct": round(test["accuracy"] * test["n"]), "n": test["n"]}, settings, seed)
    report.update(batch=name, path=str(batch["path"]), source=listing.source, dropped=dropped,
                  findings=[*({"code": f.code, "severity": f.severity, "message": f.message}
                              for f in listing.findings), *report["findings"]],
                  model_sha256=card["sha256"])
    per_image = pd.concat([images, predictions[["predicted", "confidence"]]], axis=1)
    per_image["outlier_score"] = report.pop("outlier_scores")
    for finding in report["findings"]:
        log.warning("%s", finding["message"])
    log.info("batch %s: drift in %s; recommendation: %s (%s)", name, ", ".join(report["drifting"]) or "no signal",
             report["recommendation"]["action"], report["recommendation"]["reason"])
    return {"images": per_image, "plot": plot_drift(reference_images, images, reference, predictions, report),
            "markdown": drift_markdown(name, report), "report": report}
