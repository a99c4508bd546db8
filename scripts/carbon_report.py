"""Energy, carbon and water per stage and in total (rule carbon_report)."""

import os
import sys

# imgclf lives beside scripts/: importable from a venv, a conda env or a cluster node.
sys.path.insert(0, os.path.dirname(snakemake.scriptdir))  # noqa: F821

import json
from pathlib import Path

from imgclf.carbon import carbon_markdown, carbon_summary, collect_job_files, plot_carbon
from imgclf.io import atomic_write_text, write_json
from imgclf.scripting import step

sm = snakemake  # noqa: F821
with step("carbon_report", sm.log[0]) as log:
    settings = sm.params.carbon
    # Every attempt of every job recorded in this working directory: reruns and
    # killed attempts cost energy too.
    files = sorted(Path(sm.params.jobs_dir).rglob("*.csv"))
    evaluation = json.loads(Path(sm.input.evaluation).read_text())
    metric = settings["metric"]
    value = evaluation["aggregate"].get(metric, {}).get("mean")
    summary = carbon_summary(collect_job_files(files), settings["water_litres_per_kwh"], metric, value)
    summary["files"] = [str(p) for p in files]
    write_json(sm.output.summary, summary)
    atomic_write_text(sm.output.markdown, carbon_markdown(summary))
    plot_carbon(summary, sm.output.plot)
    total = summary["total"]
    log.info("%d job files, %d attempts: %.4f kWh, %.5f kg CO2eq, %.3f L of water", len(files), total["attempts"],
             total["kwh"], total["kg_co2eq"], total["litres"])
    for component, entry in summary["measures"].items():
        log.info("%s: %s", component, entry["kind"])
