"""Rule monitor_summary (stage monitor): every batch's verdict and recommendation."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.monitor import monitor_summary  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "monitor_summary") as log:
    write_outputs(sm.output, monitor_summary(sm.params.batches, sm.input.reports, log))
