"""Rule report_galleries (stage report): samples per class, the deployed model's mistakes."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.report import report_galleries  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "report_galleries") as log:
    write_outputs(sm.output, report_galleries(sm.input.train, sm.input.predictions, sm.input.model_card,
                                              sm.input.data_root, sm.params.settings, sm.params.seed, log))
