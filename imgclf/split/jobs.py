"""The split stage's job: what its script calls."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imgclf.core.io import read_index, sha256_file
from imgclf.split.folds import SplitOptions, make_split


def split_data(config: dict[str, Any], index: str | Path, sealed_test: str | Path | None,
               log: logging.Logger) -> dict[str, Any]:
    """Rule split_data: the sealed test set and the K train/validation folds, from the index.

    Args:
        config: The validated config (``seed``, ``split``, ``validation``).
        index: The index (``results/data/index.csv``).
        sealed_test: ``split.sealed_test``: an earlier test manifest whose images stay the test
            set (a retraining), or None.
        log: The job's logger.

    Returns:
        ``test``, ``train`` and ``val`` (one table per fold) and ``summary`` (last: its presence
        marks a complete split).
    """
    sealed = read_index(sealed_test) if sealed_test else None
    split = make_split(read_index(index), SplitOptions.from_config(config), sealed)
    for warning in split.warnings:
        log.warning("%s", warning)
    summary = dict(split.summary, index_sha256=sha256_file(index))
    if sealed_test:
        summary["sealed_test"] = dict(summary["sealed_test"], manifest_sha256=sha256_file(sealed_test))
        log.info("sealed test set: %d image(s) from %s; %d image(s) left out of the folds",
                 len(split.test), sealed_test, summary["sealed_test"]["n_dropped"])
    log.info("test: %d images; %d fold(s) of train %s / val %s; leak check passed", len(split.test),
             len(split.folds), [len(t) for t, _ in split.folds], [len(v) for _, v in split.folds])
    return {"test": split.test, "train": [train for train, _ in split.folds],
            "val": [val for _, val in split.folds], "summary": summary}
