"""The reproducibility record of the run (rule reproducibility_record)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
from pathlib import Path

from imgclf.io import write_json
from imgclf.reproducibility import reproducibility_record
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("reproducibility_record", sm.log[0]) as log:
    finals = [json.loads(Path(p).read_text()) for p in sm.input.finals]
    evaluations = [json.loads(Path(p).read_text()) for p in sm.input.evaluations]
    record = reproducibility_record(sm.params.config, [sm.input.index, *sm.input.manifests], finals, evaluations,
                                    sm.params.workflow_dir)
    write_json(sm.output.record, record)
    log.info("config %s, %d manifests, git %s", record["config_sha256"][:12], len(record["manifests_sha256"]),
             (record["git"].get("commit") or "none")[:12])
