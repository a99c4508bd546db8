"""The bias audit of the final models' test predictions (rule audit_models)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
import re
from pathlib import Path

import pandas as pd

from imgclf.audit import audit_markdown, audit_models, group_metrics_table, log_findings
from imgclf.audit_plots import plot_group_metrics
from imgclf.config import validate_config
from imgclf.io import atomic_write_text, read_index, write_csv, write_json
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("audit_models", sm.log[0]) as log:
    config = validate_config(dict(sm.params.settings), source="the audit settings")
    index = read_index(sm.input.index)
    predictions = {int(re.search(r"seed_(\d+)", path).group(1)):
                   pd.read_csv(path, dtype={"label": str, "predicted": str, "path": str})
                   for path in sm.input.predictions}
    classes = sorted(index["label"].unique())
    result = audit_models(predictions, index, read_index(sm.input.train), classes, config)
    table = group_metrics_table(result["per_seed"])
    data_audit = json.loads(Path(sm.input.data_audit).read_text())
    markdown = audit_markdown(data_audit, result)
    # The audit's tables go to the log first: a failing gate keeps its evidence.
    log.info("\n%s", markdown)
    log_findings(result["findings"], log, "the bias audit",
                 "see the findings above (also in this log); raise audit.gap_failure only with a reason")
    write_csv(sm.output.group_metrics, table)
    plot_group_metrics(table, result["metric"], sm.output.plot)
    atomic_write_text(sm.output.markdown, markdown)
    write_json(sm.output.audit, result)
    log.info("%d columns audited over %d models; %d findings", len(result["summary"]), len(predictions),
             len(result["findings"]))
