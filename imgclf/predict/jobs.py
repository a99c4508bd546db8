"""The predict stage's job that needs no TensorFlow: what its script calls."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgclf.core.errors import ImgclfError
from imgclf.core.io import read_json
from imgclf.predict.predictions import predict_markdown


def predict_summary_page(batches: Sequence[str], summaries: Sequence[str | Path], log: logging.Logger) -> dict[str, Any]:
    """Rule predict_summary: every predicted batch in one page, with where its predictions are.

    Args:
        batches: The batches' names (``predict.batches``), in the order of ``summaries``.
        summaries: Their ``predict.json``.
        log: The job's logger (one line per batch).

    Returns:
        ``summary`` (Markdown).

    Raises:
        ImgclfError: No batch is configured.
    """
    if not batches:
        raise ImgclfError("no images to predict: predict.batches is empty",
                          "name the new images' folder or manifest: make predict IMAGES=path/to/images, or set "
                          "predict.batches: {name: {path: ...}} in the config")
    records = [read_json(path) for path in summaries]
    paths = [str(Path(path).with_name("predictions.csv")) for path in summaries]
    for record, path in zip(records, paths):
        log.info("batch %s: %d images predicted with the %s model (%s/s): %s", record["batch"], record["n_images"],
                 record["model"]["kind"], record["images_per_second"], path)
    return {"summary": predict_markdown(records, paths)}
