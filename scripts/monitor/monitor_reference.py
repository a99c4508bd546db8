"""Rule monitor_reference (stage monitor): what new batches are compared with."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.monitor import monitor_reference  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "monitor_reference") as log:
    write_outputs(sm.output, monitor_reference(sm.input.model, sm.input.card, sm.input.index, sm.input.train,
                                               sm.input.val, sm.input.data_root, sm.params.reference_images,
                                               sm.params.seed, sm.threads, log))
