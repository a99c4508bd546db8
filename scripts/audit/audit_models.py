"""Rule audit_models (stage audit): the final models' test metrics per group."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.audit import audit_models  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "audit_models") as log:
    write_outputs(sm.output, audit_models(sm.params.settings, sm.input.index, sm.input.predictions,
                                          sm.input.train, sm.input.data_audit, log))
