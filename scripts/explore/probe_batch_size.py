"""Rule probe_batch_size (stage explore): training throughput per batch size."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import JobResources, job, write_file, write_outputs  # noqa: E402
from imgclf.explore import probe_batch_size  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "probe_batch_size") as log:
    result = probe_batch_size(sm.config, sm.input.index, sm.input.train, JobResources.of(sm, "probe"), sm.params.emissions,
                              sm.params.record, log)
    write_outputs(sm.output, {"batch_size": result["batch_size"]})
    # Not an output (Snakemake would delete it before a rerun): the kept pick outlives results/.
    write_file(sm.params.record, result["record"])
