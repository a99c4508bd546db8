"""Validate the data source and write the index (rule validate_data)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

from imgclf.data import validate_source
from imgclf.io import write_csv, write_json, atomic_write_text
from imgclf.scripting import progress_logger, step
from imgclf.findings import format_finding
from imgclf.validation import raise_on_errors, render_markdown

sm = snakemake  # noqa: F821
with step("validate_data", sm.log.log) as log:
    log.info("validating %s (%s source) with %d worker(s)",
             sm.input.data_root, sm.config["data"]["source"], sm.threads)
    result = validate_source(sm.config, sm.input.data_root, sm.input.get("manifest"),
                             sm.input.get("metadata"), workers=sm.threads,
                             progress=progress_logger(log, "images inspected"))
    for finding in result.findings:
        if finding.severity == "warning":  # errors are reported once, below
            log.warning("%s", format_finding(finding, max_files=5))
    # The report is always kept beside the log, so a failed run still explains itself.
    atomic_write_text(sm.log.report, render_markdown(result))
    raise_on_errors(result, report_path=sm.log.report)
    write_json(sm.output.validation_json, result.to_dict())
    atomic_write_text(sm.output.validation_md, render_markdown(result))
    write_csv(sm.output.index, result.index)
    log.info("%d usable images in %d classes; %d warning(s)", len(result.index),
             len(result.summary["classes"]), sum(f.severity == "warning" for f in result.findings))
