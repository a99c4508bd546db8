"""Rule monitor_batch (stage monitor): one batch of new images against the reference."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.monitor import monitor_batch  # noqa: E402

sm = snakemake  # noqa: F821
name = sm.wildcards.batch
with job(sm.log[0], f"monitor_batch {name}") as log:
    write_outputs(sm.output, monitor_batch(
        name, sm.params.batch, sm.input.model, sm.input.card, sm.input.reference_statistics,
        sm.input.reference_embeddings, sm.input.reference_predictions, sm.params.settings, sm.params.validation,
        sm.params.seed, sm.threads, log))
