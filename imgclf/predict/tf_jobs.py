"""The predict stage's TensorFlow job: what its script and ``python -m imgclf.predict`` call.

It configures TensorFlow (:func:`imgclf.core.runtime.configure`: seed, threads, determinism)
before importing it: keep TensorFlow imports inside the functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core import runtime
from imgclf.core.errors import ImgclfError
from imgclf.core.io import read_json, sha256_file
from imgclf.core.job import JobResources
from imgclf.predict.predictions import chunk_ranges, input_findings, predict_summary, prediction_rows

#: A function from some images (a training.inputs.Manifest) to their class probabilities.
Predictor = Callable[[Any], np.ndarray]


def read_card(card: str | Path, model: str | Path) -> dict[str, Any]:
    """The model's card (classes, input size, channels), checked before any image is read.

    Raises:
        ImgclfError: The model or its card is missing (an ensemble asked for before the final
            models exist, a TFLite file before the export), naming the file and what to run.
    """
    for path in (Path(model), Path(card)):
        if not path.is_file():
            what = ("the ensemble of the final models" if "ensemble" in path.parts else
                    "the TFLite export" if path.suffix == ".tflite" else "the deployed model")
            raise ImgclfError(f"{path} does not exist: {what} has not been made yet",
                              "run the pipeline first (make run, or snakemake predict which makes it), or choose "
                              "another model (predict.model, or --model)")
    card_record = read_json(card)
    missing = [k for k in ("classes", "image_size", "channels") if k not in card_record]
    if missing:
        raise ImgclfError(f"{card} is not a model card of this pipeline: it lacks {', '.join(missing)}",
                          "pass the model.json written beside the model (results/evaluate/deployed/model.json)")
    return card_record


def load_predictor(model: str | Path, card: dict[str, Any], batch_size: int, threads: int) -> Predictor:
    """A function from images to class probabilities, from a Keras model (``.keras``) or a TFLite
    file, both fed exactly as the evaluation feeds the test images (same decoding and resizing).

    Raises:
        ImgclfError: The model cannot be loaded, or its outputs do not match the card's classes.
    """
    from imgclf.training.predict import load_model, predict_proba

    classes, size, channels = card["classes"], tuple(card["image_size"]), int(card["channels"])
    if Path(model).suffix == ".tflite":
        from imgclf.export import interpreter, load_pixels, tflite_proba

        content = Path(model).read_bytes()
        try:
            outputs = int(interpreter(content, threads).get_output_details()[0]["shape"][-1])
        except ImgclfError as error:
            raise ImgclfError(f"{model}: {error.message}", error.hint) from None
        _check_outputs(model, outputs, classes)
        return lambda manifest: tflite_proba(content, load_pixels(manifest, size, channels, batch_size), threads)
    network = load_model(model)
    _check_outputs(model, int(network.outputs[0].shape[-1]), classes)
    return lambda manifest: predict_proba(network, manifest, size, channels, batch_size)


def _check_outputs(model: str | Path, outputs: int, classes: list[str]) -> None:
    if outputs != len(classes):
        raise ImgclfError(f"{model} gives {outputs} class probabilities, but its card names {len(classes)} classes "
                          f"({', '.join(classes)})",
                          "use the model and the model.json of the same run (export the TFLite files again "
                          "with snakemake --forcerun export_model)")


def predict_batch(name: str, batch: dict[str, Any], model: str | Path, card: str | Path, kind: str,
                  settings: dict[str, Any], validation: dict[str, Any], resources: JobResources, seed: int,
                  write_rows: Callable[[pd.DataFrame], None], log: logging.Logger) -> dict[str, Any]:
    """Rule predict_batch: the class of every image of a batch of new images.

    The batch is listed and every file read first, as data validation does (a bad file stops
    the batch before any prediction, or is dropped), then the images are predicted chunk by
    chunk (``predict.chunk_images``) and each chunk's rows handed to ``write_rows``: memory
    stays flat whatever the batch's size.

    Args:
        name, batch: The batch's name and settings (``predict.batches.<name>``).
        model, card: The model file (Keras or TFLite) and its card. kind: ``predict.model``.
        settings: ``predict`` (batch_size, chunk_images). validation: ``on_bad_file`` and limits.
        resources: The job's threads and CPUs. seed: The experiment's seed.
        write_rows: Called with each chunk's rows of ``predictions.csv``, in path order.
        log: The job's logger.

    Returns:
        The summary (``predict.json``, :func:`imgclf.predict.predictions.predict_summary`).
    """
    record = read_card(card, model)
    runtime.configure(seed, resources.threads, resources.cpus)
    from imgclf.data import ValidationOptions, inspect_batch, list_batch
    from imgclf.core.job import progress_logger
    from imgclf.training.inputs import Manifest

    classes = record["classes"]
    predictor = load_predictor(model, record, settings["batch_size"], resources.threads)
    listing = list_batch(name, batch, section="predict")
    log.info("batch %s: %d files (%s, %s); model: %s (%s)", name, len(listing.entries), listing.source,
             "labelled" if listing.labelled else "unlabelled", kind, model)
    options = ValidationOptions(**{**validation, "image_size": tuple(record["image_size"])})
    images, dropped = inspect_batch(listing, options, workers=resources.cpus or 1,
                                    progress=progress_logger(log, "images read"), section="predict")
    for item in dropped:
        log.warning("dropped %s: %s (%s)", item["path"], item["problem"], item["detail"])
    findings = [{"code": f.code, "severity": f.severity, "message": f.message} for f in listing.findings]
    findings += input_findings(images, record["image_size"], record["channels"])
    for finding in findings:
        log.warning("%s", finding["message"])
    counts: pd.Series = pd.Series(dtype=int)
    correct, n_labelled = 0, 0
    progress = progress_logger(log, "images predicted")
    started = time.perf_counter()
    for start, stop in chunk_ranges(len(images), settings["chunk_images"]):
        part = images.iloc[start:stop]
        manifest = Manifest([str(listing.root / p) for p in part["path"]], np.zeros(len(part), np.int32), part)
        rows = prediction_rows(part, predictor(manifest), classes)
        write_rows(rows)
        counts = counts.add(rows["predicted"].value_counts(), fill_value=0)
        if "label" in rows:
            known = rows["label"].notna()
            n_labelled += int(known.sum())
            correct += int((rows.loc[known, "label"] == rows.loc[known, "predicted"]).sum())
        progress(stop, len(images))
    seconds = time.perf_counter() - started
    summary = predict_summary(
        name, listing.source, {"kind": kind, "path": str(model), "sha256": sha256_file(model),
                               "seeds": record.get("members") or [record.get("chosen", {}).get("seed")]},
        classes, counts, len(images), dropped, findings, seconds, correct, n_labelled)
    log.info("batch %s: %d images predicted in %.1f s (%.0f images/s)%s", name, len(images), seconds,
             summary["images_per_second"],
             f"; accuracy on its {n_labelled} labelled images {correct / n_labelled:.4f}" if n_labelled else "")
    return summary
