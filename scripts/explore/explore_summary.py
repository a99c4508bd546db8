"""Rule explore_summary (stage explore): a study's answer and figures."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.explore import explore_summary  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], f"explore_summary {sm.wildcards.study}") as log:
    write_outputs(sm.output, explore_summary(sm.params.study, sm.config["seed"], sm.params.objective,
                                             sm.input.metrics, sm.input.histories, log))
