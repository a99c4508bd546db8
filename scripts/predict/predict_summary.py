"""Rule predict_summary (stage predict): every predicted batch in one page."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.predict import predict_summary_page  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "predict_summary") as log:
    write_outputs(sm.output, predict_summary_page(sm.params.batches, sm.input.summaries, log))
