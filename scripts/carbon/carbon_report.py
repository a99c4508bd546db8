"""Rule carbon_report (stage carbon): energy, carbon and water per stage and in total."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.carbon import carbon_report  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "carbon_report") as log:
    write_outputs(sm.output, carbon_report(sm.params.job_files, sm.input.evaluation, sm.params.carbon,
                                           sm.params.stage_order, log))
