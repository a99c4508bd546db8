"""Rule audit_data (stage audit): the bias audit of the data, before training."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.audit import audit_data  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "audit_data") as log:
    write_outputs(sm.output, audit_data(sm.params.settings, sm.input.index, sm.input.train, sm.input.val, log))
