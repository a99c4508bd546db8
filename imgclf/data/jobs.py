"""The data stage's jobs: what its scripts call (one function per rule)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from imgclf.core.findings import format_finding
from imgclf.core.io import atomic_write_text
from imgclf.core.job import progress_logger
from imgclf.data.index import validate_source
from imgclf.data.validation import raise_on_errors, render_markdown


def validate_data(config: dict[str, Any], data_root: str | Path, manifest: str | Path | None,
                  metadata: str | Path | None, workers: int, report_path: str | Path,
                  log: logging.Logger) -> dict[str, Any]:
    """Rule validate_data: validate the configured source and build the index.

    The report is written to ``report_path`` (a log file, kept even when validation fails) before
    errors stop the job, so that a failed run still explains itself.

    Returns:
        ``validation_json``, ``validation_md`` and ``index`` (the index last: its presence marks a
        complete validation).

    Raises:
        DataValidationError: Validation found errors (named, with the files and what to do).
    """
    log.info("validating %s (%s source) with %d worker(s)", data_root, config["data"]["source"], workers)
    result = validate_source(config, data_root, manifest, metadata, workers=workers,
                             progress=progress_logger(log, "images inspected"))
    for finding in result.findings:
        if finding.severity == "warning":  # errors are reported once, by raise_on_errors
            log.warning("%s", format_finding(finding, max_files=5))
    report = render_markdown(result)
    atomic_write_text(report_path, report)
    raise_on_errors(result, report_path=str(report_path))
    log.info("%d usable images in %d classes; %d warning(s)", len(result.index), len(result.summary["classes"]),
             sum(f.severity == "warning" for f in result.findings))
    return {"validation_json": result.to_dict(), "validation_md": report, "index": result.index}
