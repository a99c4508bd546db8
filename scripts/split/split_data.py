"""Rule split_data (stage split): the sealed test set and the fold manifests."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.split import split_data  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "split_data") as log:
    write_outputs(sm.output, split_data(sm.config, sm.input.index, sm.input.get("sealed_test"), log))
