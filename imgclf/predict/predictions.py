"""The predict stage's pure parts: the rows of ``predictions.csv``, what is said about images
unlike the model's, and the run's summary. No TensorFlow here (:mod:`imgclf.predict.tf_jobs`
runs the model).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from imgclf.core.errors import ConfigError

#: What ``predict.model`` may name: the deployed Keras model, the ensemble of the final models
#: (results/evaluate/ensemble/), or one of the deployed model's TFLite files.
MODEL_KINDS = ("deployed", "ensemble", "float32", "float16", "int8")


def model_files(kind: str, export_formats: list[str] | None = None) -> dict[str, str]:
    """The files a prediction with ``predict.model`` = ``kind`` reads: ``model`` and ``card``
    (the classes, input size and channels).

    Args:
        kind: One of :data:`MODEL_KINDS`.
        export_formats: ``export.formats``, to refuse a TFLite format the export does not make;
            None skips that check (the command line, which checks that the file exists).

    Raises:
        ConfigError: An unknown kind, or a TFLite format the export does not make.
    """
    if kind not in MODEL_KINDS:
        raise ConfigError(f"predict.model is {kind!r}", f"use one of {', '.join(MODEL_KINDS)}")
    if kind == "deployed":
        return {"model": "results/evaluate/deployed/model.keras", "card": "results/evaluate/deployed/model.json"}
    if kind == "ensemble":
        return {"model": "results/evaluate/ensemble/model.keras", "card": "results/evaluate/ensemble/model.json"}
    if export_formats is not None and kind not in export_formats:
        raise ConfigError(f"predict.model is {kind}, but export.formats ({', '.join(export_formats) or 'none'}) "
                          f"does not make the {kind} TFLite file",
                          f"add {kind} to export.formats, or set predict.model to deployed")
    return {"model": f"results/export/model_{kind}.tflite", "card": "results/evaluate/deployed/model.json"}


def chunk_ranges(n: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive chunks of at most ``size`` items: images are predicted and
    written chunk by chunk, so memory does not grow with the batch."""
    for start in range(0, n, max(1, size)):
        yield start, min(n, start + max(1, size))


def prediction_rows(images: pd.DataFrame, proba: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """The rows of ``predictions.csv`` for some images: path, the label when the batch has labels,
    sha256, predicted class, confidence and one probability column per class (``p_<class>``,
    as in the evaluation's predictions).

    Args:
        images: The images' table (path, label, sha256... from the batch's inspection).
        proba: Their class probabilities, in the table's order.
        classes: The model's classes, in index order.
    """
    rows = pd.DataFrame({"path": images["path"].to_numpy()})
    if images["label"].notna().any():
        rows["label"] = images["label"].to_numpy()
    rows["sha256"] = images["sha256"].to_numpy()
    rows["predicted"] = [classes[i] for i in proba.argmax(axis=1)]
    rows["confidence"] = proba.max(axis=1).round(6)
    for i, name in enumerate(classes):
        rows[f"p_{name}"] = proba[:, i].round(6)
    return rows


def input_findings(images: pd.DataFrame, image_size: list[int], channels: int) -> list[dict[str, Any]]:
    """What happens to images unlike the model's input: they are converted and resized as in
    training, and said so (with counts and an example).

    Args:
        images: The usable images (width, height, mode).
        image_size: The model's input (height, width). channels: 1 (grayscale) or 3 (RGB).
    """
    findings = []
    grey = images["mode"].isin(["L", "LA", "I", "I;16", "F", "1"])
    other_mode = ~grey if channels == 1 else grey
    if other_mode.any():
        example = images.loc[other_mode, "mode"].iloc[0]
        findings.append({"code": "other_image_mode", "severity": "warning",
                         "message": f"{int(other_mode.sum())} image(s) are not {'grayscale' if channels == 1 else 'colour'} "
                                    f"(e.g. mode {example}); converted to the model's {channels} channel(s), as in "
                                    "training"})
    height, width = int(image_size[0]), int(image_size[1])
    resized = (images["width"].astype(int) != width) | (images["height"].astype(int) != height)
    if resized.any():
        example = images.loc[resized].iloc[0]
        findings.append({"code": "resized", "severity": "info",
                         "message": f"{int(resized.sum())} image(s) are not {width}x{height} (e.g. "
                                    f"{int(example['width'])}x{int(example['height'])}); resized to the model's "
                                    "input, as in training"})
    return findings


def predict_summary(name: str, source: str, model: dict[str, Any], classes: list[str], counts: pd.Series,
                    n_images: int, dropped: list[dict[str, str]], findings: list[dict[str, Any]],
                    seconds: float, correct: int | None = None, n_labelled: int = 0) -> dict[str, Any]:
    """``predict.json``: what was predicted, with which model, how fast, and what was said.

    Args:
        name, source: The batch's name and its kind (flat folder, class folders, manifest).
        model: ``kind``, ``path`` and ``sha256`` of the model file, and the card's ``seeds``.
        classes: The model's classes. counts: Images predicted per class.
        n_images: Images predicted. dropped: Files left out (``on_bad_file: drop``).
        findings: From :func:`input_findings` and the listing.
        seconds: Time spent predicting (images/s is a measurement, recorded, not a decision).
        correct, n_labelled: For labelled images: how many were predicted right, of how many.
    """
    summary = {"batch": name, "source": source, "model": model, "classes": classes, "n_images": n_images,
               "predicted": {c: int(counts.get(c, 0)) for c in classes}, "dropped": dropped, "findings": findings,
               "seconds": round(seconds, 3), "images_per_second": round(n_images / max(seconds, 1e-9), 1)}
    if n_labelled:
        summary["labelled"] = {"n": n_labelled, "correct": correct, "accuracy": round(correct / n_labelled, 6)}
    return summary


def predict_markdown(summaries: list[dict[str, Any]], paths: list[str]) -> str:
    """``results/predict/summary.md``: one line per batch, where its predictions are."""
    lines = ["# Predictions", "", "| batch | images | model | predicted classes | accuracy (labelled) | file |",
             "|---|---|---|---|---|---|"]
    for summary, path in zip(summaries, paths):
        counts = ", ".join(f"{c} {n}" for c, n in summary["predicted"].items() if n)
        labelled = summary.get("labelled")
        accuracy = f"{labelled['accuracy']:.4f} (n = {labelled['n']})" if labelled else "no labels"
        lines.append(f"| {summary['batch']} | {summary['n_images']} | {summary['model']['kind']} | {counts} | "
                     f"{accuracy} | {path} |")
    return "\n".join(lines) + "\n"
