"""Print each monitored batch's verdicts and recommendation (the `monitor` target)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
from pathlib import Path

from imgclf.errors import ImgclfError
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("monitor", sm.log[0]) as log:
    if not sm.params.batches:
        raise ImgclfError("no batch to monitor: monitor.batches is empty",
                          "name the new images' folder or manifest: make monitor BATCH=path/to/images, or set "
                          "monitor.batches: {name: {path: ...}} in the config")
    for name, path in zip(sm.params.batches, sm.input.reports):
        report = json.loads(Path(path).read_text())
        rec = report["recommendation"]
        log.info("batch %s (%d images): drift in %s -> %s: %s. Details: %s", name, report["n_images"],
                 ", ".join(report["drifting"]) or "no signal", rec["action"].upper(), rec["reason"],
                 Path(path).with_suffix(".md"))
    log.info("the HTML report has a drift section: %s", sm.input.html)
