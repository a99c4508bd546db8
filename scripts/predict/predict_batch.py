"""Rule predict_batch (stage predict): the class of every image of one batch of new images."""

import sys
from pathlib import Path

# imgclf lives two folders up: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821


from imgclf.core.job import JobResources, csv_appender, job, write_outputs  # noqa: E402
from imgclf.predict import predict_batch  # noqa: E402

sm = snakemake  # noqa: F821
name = sm.wildcards.batch
with job(sm.log[0], f"predict_batch {name}") as log, csv_appender(sm.output.predictions) as write_rows:
    summary = predict_batch(name, sm.params.batch, sm.input.model, sm.input.card, sm.params.kind,
                            sm.params.settings, sm.params.validation, JobResources.of(sm, "evaluate"),
                            sm.params.seed, write_rows, log)
write_outputs(sm.output, {"summary": summary})
