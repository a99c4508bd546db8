"""The split stage's job: what its script calls."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imgclf.core.io import read_index, sha256_file
from imgclf.split.folds import SplitOptions, make_split


def check_class_names(config: dict[str, Any], class_names: list[str] | None) -> list[str]:
    """Every check of the keys that name classes (targets, audit metrics, objectives), against
    the data's classes (None: all but the class names). Run when the workflow loads, on the
    classes its folders show, and by the split, on the classes left after validation.

    Returns:
        Warnings: an objective or monitor set against the targets.

    Raises:
        ConfigError: Naming the key at fault and what to do.
    """
    from imgclf.audit import check_audit
    from imgclf.core.objectives import check_objectives
    from imgclf.final import check_final

    check_final(config, class_names)
    check_audit(config, class_names)
    return check_objectives(config, class_names)


def check_surviving_classes(config: dict[str, Any], classes: list[str], index: str | Path) -> None:
    """:func:`check_class_names` against the classes left after validation: a class whose every
    image was dropped as bad stops the run here, before any training, not after every training at
    the evaluation.

    Raises:
        ConfigError: Naming the key, the class, and where validation says what was dropped.
    """
    from imgclf.core.errors import ConfigError

    try:
        check_class_names(config, classes)
    except ConfigError as error:
        raise ConfigError(f"{error.message}; these are the classes with usable images in {index}, after "
                          "validation (results/data/validation.md names every file it dropped and why)",
                          error.hint) from None


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
    table = read_index(index)
    check_surviving_classes(config, sorted(table["label"].astype(str).unique()), index)
    sealed = read_index(sealed_test) if sealed_test else None
    split = make_split(table, SplitOptions.from_config(config), sealed)
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
