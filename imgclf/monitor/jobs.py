"""The monitor stage's jobs that need no TensorFlow: what their scripts call (one function per rule).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgclf.core.errors import ImgclfError
from imgclf.core.io import read_json

def monitor_summary(batches: Sequence[str], reports: Sequence[str], log: logging.Logger) -> dict[str, Any]:
    """Rule monitor_summary: every monitored batch's verdicts and recommended action, in one page.

    Args:
        batches: The batches' names (``monitor.batches``), in the order of ``reports``.
        reports: Their drift reports.
        log: The job's logger (one line per batch: the console shows the verdicts).

    Returns:
        ``summary`` (Markdown).

    Raises:
        ImgclfError: No batch is configured.
    """
    if not batches:
        raise ImgclfError("no batch to monitor: monitor.batches is empty",
                          "name the new images' folder or manifest: make monitor BATCH=path/to/images, or set "
                          "monitor.batches: {name: {path: ...}} in the config")
    lines = ["# Drift monitoring", "", "| batch | images | drift in | recommendation | why | details |",
             "|---|---|---|---|---|---|"]
    for name, path in zip(batches, reports):
        report = read_json(path)
        recommendation = report["recommendation"]
        drifting = ", ".join(report["drifting"]) or "no signal"
        details = Path(path).with_suffix(".md")
        log.info("batch %s (%d images): drift in %s -> %s: %s. Details: %s", name, report["n_images"], drifting,
                 recommendation["action"].upper(), recommendation["reason"], details)
        lines.append(f"| {name} | {report['n_images']} | {drifting} | {recommendation['action']} | "
                     f"{recommendation['reason']} | {details} |")
    return {"summary": "\n".join(lines) + "\n"}
