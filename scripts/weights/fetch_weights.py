"""Rule fetch_weights (stage weights): the pretrained weight files in the cache, recorded."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.weights import fetch_weights  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "fetch_weights") as log:
    write_outputs(sm.output, fetch_weights(sm.params.model, sm.params.explore, sm.params.tune,
                                           sm.params.image_size, log))
