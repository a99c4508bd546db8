"""The carbon stage in the pipeline run."""

import json

import pytest


pytestmark = pytest.mark.workflow


def test_every_training_job_records_its_emissions_and_the_report_sums_them(pipeline_run):
    workdir, _, log = pipeline_run
    # Each job's record lies beside its outputs, in its stage's folder.
    files = sorted(p.relative_to(workdir / "results").as_posix() for p in (workdir / "results").rglob("*emissions.csv"))
    assert files == ["evaluate/seed_42/emissions.csv", "evaluate/seed_43/emissions.csv",
                     "explore/opt/p00/emissions.csv", "explore/opt/p01/emissions.csv",
                     "final/seed_42/emissions.csv", "final/seed_43/emissions.csv", "tune/emissions.csv"]
    carbon = json.loads((workdir / "results/carbon/carbon.json").read_text())
    assert carbon["files"] == [f"results/{name}" for name in files]
    assert [s["stage"] for s in carbon["stages"]] == ["explore", "tune", "final", "evaluate"]
    assert carbon["total"]["attempts"] == 7 and carbon["total"]["kwh"] > 0 and carbon["killed_or_failed"] == []
    assert carbon["total"]["litres"] == pytest.approx(carbon["total"]["kwh"] * 1.8)
    assert carbon["measures"]["cpu"]["kind"] in ("estimated", "measured")
    assert carbon["intensity"][0].startswith("world average") and carbon["energy_per_point"]["metric"] == "accuracy"
    markdown = (workdir / "results/carbon/carbon.md").read_text()
    assert "| tune | 1 | 1 |" in markdown and "world average" in markdown
    assert "carbon: tracking final/seed_42" in (workdir / "logs/final/seed_42.log").read_text()
