"""Measure training throughput per batch size and pick one (rule probe_batch_size)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

from imgclf.carbon import track_emissions
from imgclf.scripting import step
from imgclf.training import runtime

sm = snakemake  # noqa: F821
with step("probe_batch_size", sm.log[0]) as log, \
        track_emissions(sm.params.emissions, "probe_batch_size", "probe", sm.config["carbon"], log):
    settings = runtime.configure(sm.config["seed"], sm.threads)
    from imgclf.io import read_index, write_json
    from imgclf.training.inputs import infer_channels
    from imgclf.training.models import build_model
    from imgclf.training.probe import probe_batch_sizes

    index = read_index(sm.input.index)
    n_classes = index["label"].nunique()
    shape = (*sm.config["data"]["image_size"], infer_channels(index, sm.config["data"]["channels"]))
    probe = sm.config["batch_probe"]
    runtime.set_precision(sm.config["train"]["mixed_precision"], settings["gpus"], log)
    result = probe_batch_sizes(lambda: build_model(sm.config["model"], n_classes, shape), shape, n_classes,
                               probe["sizes"], probe["steps"], probe["min_gain"],
                               len(read_index(sm.input.train)), sm.config["train"],
                               probe["min_steps_per_epoch"], log)
    result["runtime"] = settings
    write_json(sm.output.batch_size, result)
    log.info("chosen batch size: %d", result["chosen"])
