"""The bias audit before training (rule audit_data)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import pandas as pd

from imgclf.audit import audit_data, audit_markdown, log_findings
from imgclf.config import validate_config
from imgclf.io import read_index, write_csv, write_json
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("audit_data", sm.log[0]) as log:
    config = validate_config(dict(sm.params.settings), source="the audit settings")
    index = read_index(sm.input.index)
    train, val = read_index(sm.input.train), read_index(sm.input.val)
    # The test set's membership is the rest of the index: its groups are counted, its labels not read.
    test = index.loc[~index["path"].isin(pd.concat([train["path"], val["path"]])), ["path"]]
    result = audit_data(index, {"train": train, "val": val, "test": test}, config)
    rows = [{"column": column, **row} for column, entry in result["columns"].items()
            for row in entry["representation"]]
    log.info("\n%s", audit_markdown(result, None))  # the evidence stays in the log if the gate fails
    log_findings(result["findings"], log, "the data audit",
                 "see the findings above; raise audit.association_failure only with a reason")
    write_csv(sm.output.representation, pd.DataFrame(rows))
    write_json(sm.output.audit, result)
    write_json(sm.output.passed, {"passed": True})
    log.info("%d group columns audited; %d findings", len(result["columns"]), len(result["findings"]))
