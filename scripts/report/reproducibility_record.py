"""Rule reproducibility_record (stage report): what a reviewer needs to rerun the run."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.report import reproducibility_record  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "reproducibility_record") as log:
    write_outputs(sm.output, reproducibility_record(sm.params.config, sm.input.index, sm.input.manifests,
                                                    sm.input.finals, sm.input.evaluations,
                                                    sm.params.workflow_dir, log, sm.params.config_origin))
