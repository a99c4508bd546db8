"""The explore stage's jobs that need no TensorFlow: what their scripts call (one function per rule).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from imgclf.core.io import read_json
from imgclf.explore.plots import plot_best_curves, plot_study
from imgclf.explore.studies import answer, expand_study, points_table_markdown, summarize_study


def explore_summary(study: dict[str, Any], seed: int, objective: dict[str, str], metrics: list[str], histories: list[str],
                    log: logging.Logger) -> dict[str, Any]:
    """Rule explore_summary: a study's answer, the best point per scientific value, edge flags.

    Args:
        study: The study's config. seed: The experiment's seed (it draws the nuisance samples).
        objective: The resolved ``explore.objective`` (:func:`imgclf.core.objectives.resolve_objective`).
        metrics, histories: Every point's metrics and history, in point order.
        log: The job's logger.

    Returns:
        ``summary``, ``table``, ``markdown``, ``plot`` and ``best_curves``.
    """
    points = expand_study(study, seed)
    log.info("points ranked by %s (%s)", objective["name"], objective["why"])
    summary = summarize_study(study, points, {p.id: read_json(m) for p, m in zip(points, metrics)}, objective["name"])
    summary["objective_why"] = objective["why"]
    summary["answer"] = answer(summary)
    log.info("%s", summary["answer"])
    for flag in summary["edge_flags"]:
        log.warning("%s", flag)
    runs = {p.id: pd.read_csv(h) for p, h in zip(points, histories)}
    return {"summary": summary, "table": pd.DataFrame(summary["rows"]), "markdown": points_table_markdown(summary),
            "plot": plot_study(summary), "best_curves": plot_best_curves(summary, runs)}
