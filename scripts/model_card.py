"""The model card of the deployed model, JSON and Markdown (rule model_card)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import datetime
import json
from pathlib import Path

from imgclf.io import atomic_write_text, sha256_file, write_json
from imgclf.model_card import build_model_card, model_card_markdown
from imgclf.scripting import step

sm = snakemake  # noqa: F821


def read(name: str) -> dict:
    return json.loads(Path(sm.input[name]).read_text())


with step("model_card", sm.log[0]) as log:
    card = build_model_card(
        read("deployed"), sha256_file(sm.input.model), Path(sm.input.model).stat().st_size, read("evaluation"),
        read("split"), read("validation"), read("audit_data"), read("audit_groups"), read("carbon"),
        read("export") if hasattr(sm.input, "export") else None, sm.params.intended_use,
        list(sm.params.limitations), datetime.datetime.now(datetime.UTC).date().isoformat())
    atomic_write_text(sm.output.markdown, model_card_markdown(card))
    write_json(sm.output.card, card)
    log.info("model card of seed %d: %d limitations listed", card["model_details"]["deployed_seed"],
             len(card["limitations"]))
