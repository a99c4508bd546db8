"""The self-contained HTML report of the run (rule report)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

from datetime import datetime, timezone

from imgclf.io import atomic_write_text, write_json
from imgclf.report.environment import git_state, hardware, package_versions
from imgclf.report.page import build_report
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("report", sm.log[0]) as log:
    environment = {"packages": package_versions(), "hardware": hardware(), "git": git_state(sm.params.workflow_dir)}
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = build_report(dict(sm.input.items()), sm.params.config, environment, generated)
    write_json(sm.output.environment, environment)
    atomic_write_text(sm.output.html, page)
    log.info("report: %s (%.0f kB)", sm.output.html, len(page) / 1024)
