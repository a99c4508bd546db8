"""The audit stage's jobs: what its scripts call (one function per rule)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from imgclf.audit.groups import audit_data as audit_data_tables
from imgclf.audit.groups import audit_markdown, group_metrics_table, log_findings
from imgclf.audit.groups import audit_models as audit_models_tables
from imgclf.audit.plots import plot_group_metrics
from imgclf.core.config import validate_config
from imgclf.core.io import read_index, read_json


def audit_data(settings: dict[str, Any], index: str | Path, train: str | Path, val: str | Path,
               log: logging.Logger) -> dict[str, Any]:
    """Rule audit_data: before training, each group column's association with the label and its
    representation in every set. It gates every training: an error finding
    (``audit.association_failure``) stops the run before any training.

    Args:
        settings: What the audit reads of the config (:func:`imgclf.audit.audit_settings`).
        index: The index. train, val: The manifests of the fold the audit describes.
        log: The job's logger (the audit's tables go to its file).

    Returns:
        ``representation``, ``audit`` and ``passed`` (the gate every training takes as input: its
        content is constant, it exists only when the audit passed).
    """
    config = validate_config(dict(settings), source="the audit settings")
    table = read_index(index)
    sets = {"train": read_index(train), "val": read_index(val)}
    # The test set's membership is the rest of the index: its groups are counted, its labels not read.
    sets["test"] = table.loc[~table["path"].isin(pd.concat([sets["train"]["path"], sets["val"]["path"]])), ["path"]]
    result = audit_data_tables(table, sets, config)
    log.debug("\n%s", audit_markdown(result, None))  # in the log file: the evidence stays if the gate fails
    log_findings(result["findings"], log, "the data audit",
                 "see the findings above; raise audit.association_failure only with a reason")
    log.info("%d group columns audited; %d findings", len(result["columns"]), len(result["findings"]))
    rows = [{"column": column, **row} for column, entry in result["columns"].items()
            for row in entry["representation"]]
    return {"representation": pd.DataFrame(rows), "audit": result, "passed": {"passed": True}}


def audit_models(settings: dict[str, Any], index: str | Path, predictions: Sequence[str], train: str | Path,
                 data_audit: str | Path, log: logging.Logger) -> dict[str, Any]:
    """Rule audit_models: every final model's test metrics per group, gaps and ratios with intervals.

    Args:
        settings: What the audit reads of the config, with ``evaluation.confidence``.
        index: The index. predictions: Each final model's test predictions (``.../seed_<s>/...``).
        train: The training manifest whose images set the image slices' edges.
        data_audit: The data audit's result (its findings are reported again).
        log: The job's logger.

    Returns:
        ``group_metrics``, ``plot``, ``markdown`` and ``audit`` (last).
    """
    config = validate_config(dict(settings), source="the audit settings")
    table = read_index(index)
    by_seed = {int(re.search(r"seed_(\d+)", path).group(1)):
               pd.read_csv(path, dtype={"label": str, "predicted": str, "path": str}) for path in predictions}
    classes = sorted(table["label"].unique())
    result = audit_models_tables(by_seed, table, read_index(train), classes, config)
    metrics = group_metrics_table(result["per_seed"])
    markdown = audit_markdown(read_json(data_audit), result)
    log.debug("\n%s", markdown)  # in the log file first: a failing gate keeps its evidence
    log_findings(result["findings"], log, "the bias audit",
                 "see the findings above (also in this log); raise audit.gap_failure only with a reason")
    log.info("%d columns audited over %d models; %d findings", len(result["summary"]), len(by_seed),
             len(result["findings"]))
    return {"group_metrics": metrics, "plot": plot_group_metrics(metrics, result["metric"]), "markdown": markdown,
            "audit": result}
