"""Rule validate_data (stage data): validate the configured source and write the index."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.data import validate_data  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log.log, "validate_data") as log:
    write_outputs(sm.output, validate_data(sm.config, sm.input.data_root, sm.input.get("manifest"),
                                           sm.input.get("metadata"), sm.threads, sm.log.report, log))
