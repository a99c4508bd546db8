"""Rule report_html (stage report): the self-contained HTML report of the run."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from imgclf.core.job import job, write_outputs  # noqa: E402
from imgclf.report import report_html  # noqa: E402

sm = snakemake  # noqa: F821
with job(sm.log[0], "report_html") as log:
    write_outputs(sm.output, report_html(dict(sm.input.items()), sm.params.config, sm.params.workflow_dir, log,
                                               sm.params.config_origin))
