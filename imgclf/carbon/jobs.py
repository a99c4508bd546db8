"""The carbon stage's job: what its script calls."""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgclf.carbon.summary import carbon_markdown, carbon_summary, collect_job_files, plot_carbon
from imgclf.core.io import read_json


def carbon_report(job_files: Sequence[str], evaluation: str | Path, settings: dict[str, Any],
                  stage_order: Sequence[str], log: logging.Logger) -> dict[str, Any]:
    """Rule carbon_report: energy, carbon and water per stage and in total.

    Args:
        job_files: Glob patterns of the jobs' emission files (every attempt of every job recorded
            in this working directory counts: reruns and killed attempts cost energy too).
        evaluation: The test summary, for the energy per point of ``carbon.metric``.
        settings: The ``carbon`` config section.
        stage_order: The pipeline's stages, in order.
        log: The job's logger.

    Returns:
        ``summary``, ``markdown`` and ``plot``.
    """
    files = sorted({path for pattern in job_files for path in glob.glob(pattern, recursive=True)})
    metric = settings["metric"]
    value = read_json(evaluation)["aggregate"].get(metric, {}).get("mean")
    summary = carbon_summary(collect_job_files(files), settings["water_litres_per_kwh"], metric, value,
                             stage_order)
    summary["files"] = files
    total = summary["total"]
    log.info("%d job files, %d attempts: %.4f kWh, %.5f kg CO2eq, %.3f L of water", len(files), total["attempts"],
             total["kwh"], total["kg_co2eq"], total["litres"])
    for component, entry in summary["measures"].items():
        log.info("%s: %s", component, entry["kind"])
    return {"summary": summary, "markdown": carbon_markdown(summary), "plot": plot_carbon(summary)}
