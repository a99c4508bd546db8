"""Carbon and water: load-time checks, the tracker's job files (kept when a job dies), aggregation."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from imgclf.carbon.intensity import check_carbon, world_intensity
from imgclf.carbon.summary import carbon_markdown, carbon_summary, collect_job_files
from imgclf.carbon.tracking import describe_measures, read_job_file
from imgclf.core.config import validate_config
from imgclf.core.errors import ConfigError


def carbon_config(**carbon):
    return validate_config({"carbon": carbon})


def test_country_and_region_are_checked_when_the_workflow_loads():
    check_carbon(carbon_config(country_iso_code="FRA"))
    check_carbon(carbon_config())  # null: the world average
    check_carbon(carbon_config(country_iso_code="USA", region="California"))
    with pytest.raises(ConfigError, match="'fra', which is not a country codecarbon knows; did you mean FRA"):
        check_carbon(carbon_config(country_iso_code="fra"))
    with pytest.raises(ConfigError, match="'XYZ', which is not a country"):
        check_carbon(carbon_config(country_iso_code="XYZ"))
    with pytest.raises(ConfigError, match="regions only for USA and CAN"):
        check_carbon(carbon_config(country_iso_code="FRA", region="paris"))
    with pytest.raises(ConfigError, match="did you mean california"):
        check_carbon(carbon_config(country_iso_code="USA", region="kalifornia"))
    check_carbon(carbon_config(enabled=False, country_iso_code="XYZ"))  # not tracked: not checked
    with pytest.raises(ConfigError, match="carbon.pue"):
        validate_config({"carbon": {"pue": 0.5}})


def test_world_average_intensity_weights_countries_by_their_electricity():
    assert 420 < world_intensity() < 540  # about 480 g CO2eq/kWh (Ember 2023: 480)


def test_measured_and_estimated_components_are_told_apart():
    assert describe_measures(["RAM()", "CPU(Cpu Load)"]) == {
        "cpu": "estimated (Cpu Load: the CPU's TDP times its load)", "gpu": "none",
        "ram": "estimated (codecarbon's RAM power model)"}
    measured = describe_measures(["RAM()", "CPU(Intel RAPL)", "GPU(NVIDIA H100)"])
    assert measured["cpu"] == "measured (Intel RAPL)" and measured["gpu"] == "measured (NVML)"


JOB = textwrap.dedent("""
    import sys, time
    from imgclf.carbon import track_emissions
    settings = {"enabled": True, "country_iso_code": "FRA", "region": None, "pue": 1.5,
                "interval_seconds": 0.5}
    with track_emissions(sys.argv[1], "final", "seed_1", settings):
        end = time.time() + float(sys.argv[2])
        x = 0
        while time.time() < end:
            x += 1
""")


def run_job(path, seconds):
    return subprocess.Popen([sys.executable, "-c", JOB, str(path), str(seconds)], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_killed_job_keeps_its_emissions_and_a_rerun_adds_its_own(tmp_path):
    path = tmp_path / "carbon" / "final" / "seed_1.csv"
    job = run_job(path, 60)
    deadline = time.time() + 60
    while time.time() < deadline:
        rows = read_job_file(path)
        if not rows.empty and rows["duration"].iloc[0] > 1.5:
            break
        time.sleep(0.3)
    job.send_signal(signal.SIGKILL)
    job.wait()
    killed = read_job_file(path)
    assert len(killed) == 1 and killed["status"].iloc[0] == "running"
    assert killed["energy_consumed"].iloc[0] > 0 and killed["pue"].iloc[0] == 1.5
    assert killed["country_iso_code"].iloc[0] == "FRA" and killed["cpu_measure"].iloc[0].startswith("estimated")
    rerun = run_job(path, 1)
    assert rerun.wait(timeout=60) == 0, rerun.stderr.read().decode()[-2000:]
    runs = read_job_file(path)
    assert runs["status"].tolist() == ["running", "finished"] and runs["run_id"].nunique() == 2
    summary = carbon_summary(collect_job_files([path]), water_litres_per_kwh=2.0)
    assert summary["total"]["attempts"] == 2 and summary["total"]["unfinished_attempts"] == 1
    assert summary["killed_or_failed"] == ["final/seed_1"]
    assert summary["total"]["kwh"] == pytest.approx(runs["energy_consumed"].sum())
    assert summary["measures"]["cpu"]["kind"] == "estimated"


def recorded(path, stage, job, rows):
    """A job file as the tracker writes it, with chosen figures."""
    base = {"run_id": "r", "duration": 10.0, "cpu_energy": 0.0, "gpu_energy": 0.0, "ram_energy": 0.0,
            "country_name": "France", "pue": 1.0, "intensity_source": "FRA grid", "cpu_measure": "estimated (x)",
            "gpu_measure": "none", "ram_measure": "estimated (y)", "status": "finished", "stage": stage, "job": job}
    table = pd.DataFrame([{**base, **row} for row in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def test_aggregation_of_recorded_files_per_stage_and_in_total(tmp_path):
    files = [
        recorded(tmp_path / "explore/a.csv", "explore", "study/p00",
                 [{"run_id": "1", "energy_consumed": 0.002, "emissions": 0.0001, "cpu_energy": 0.0015,
                   "ram_energy": 0.0005}]),
        recorded(tmp_path / "explore/b.csv", "explore", "study/p01",
                 [{"run_id": "2", "energy_consumed": 0.003, "emissions": 0.0002, "status": "running"},
                  {"run_id": "3", "energy_consumed": 0.001, "emissions": 0.0001}]),
        recorded(tmp_path / "final/seed_1.csv", "final", "seed_1",
                 [{"run_id": "4", "energy_consumed": 0.004, "emissions": 0.0003, "gpu_energy": 0.003,
                   "gpu_measure": "measured (NVML)"}]),
    ]
    summary = carbon_summary(collect_job_files(files), water_litres_per_kwh=1.8, metric="accuracy",
                             metric_value=0.8)
    explore, final = summary["stages"]
    assert (explore["stage"], explore["jobs"], explore["attempts"]) == ("explore", 2, 3)
    assert explore["kwh"] == pytest.approx(0.006) and explore["kg_co2eq"] == pytest.approx(0.0004)
    assert explore["litres"] == pytest.approx(0.006 * 1.8) and explore["unfinished_attempts"] == 1
    assert final["kwh"] == pytest.approx(0.004) and final["gpu_kwh"] == pytest.approx(0.003)
    assert summary["total"]["kwh"] == pytest.approx(0.010) and summary["total"]["seconds"] == pytest.approx(40)
    assert summary["energy_per_point"]["kwh_per_point"] == pytest.approx(0.010 / 80)
    assert summary["measures"]["gpu"]["kind"] == "measured" and summary["measures"]["cpu"]["kind"] == "estimated"
    assert summary["killed_or_failed"] == ["explore/study/p01"]
    markdown = carbon_markdown(summary)
    assert "| explore | 2 | 3 |" in markdown and "10 Wh" in markdown and "18 mL of water" in markdown
    assert "- GPU: measured (NVML)" in markdown and "- CPU: estimated (x)" in markdown


def test_no_record_gives_an_empty_report(tmp_path):
    summary = carbon_summary(collect_job_files([tmp_path / "absent.csv"]), 1.8)
    assert summary["total"]["kwh"] == 0 and "no emissions recorded" in carbon_markdown(summary)


def test_the_report_job_reads_every_jobs_emissions_file_the_patterns_find(tmp_path, monkeypatch):
    import json
    import logging

    from imgclf.carbon import carbon_report

    monkeypatch.chdir(tmp_path)
    recorded(tmp_path / "results/explore/batch_size_emissions.csv", "explore", "batch_size_probe",
             [{"run_id": "1", "energy_consumed": 0.001, "emissions": 0.0001}])
    recorded(tmp_path / "results/explore/opt/p00/emissions.csv", "explore", "opt/p00",
             [{"run_id": "2", "energy_consumed": 0.002, "emissions": 0.0002}])
    recorded(tmp_path / "results/final/seed_42/emissions.csv", "final", "seed_42",
             [{"run_id": "3", "energy_consumed": 0.004, "emissions": 0.0003}])
    (tmp_path / "results/final/seed_42/history.csv").write_text("epoch\n1\n")
    evaluation = tmp_path / "summary.json"
    evaluation.write_text(json.dumps({"aggregate": {"accuracy": {"mean": 0.8}}}))
    settings = validate_config({})["carbon"]
    result = carbon_report(["results/*/**/*emissions.csv"], evaluation, settings, ["data", "explore", "final"],
                           logging.getLogger("test.carbon"))
    summary = result["summary"]
    assert summary["files"] == ["results/explore/batch_size_emissions.csv", "results/explore/opt/p00/emissions.csv",
                                "results/final/seed_42/emissions.csv"]
    assert [s["stage"] for s in summary["stages"]] == ["explore", "final"] and summary["total"]["attempts"] == 3
    assert summary["energy_per_point"]["value"] == 0.8 and "| explore | 2 | 2 |" in result["markdown"]
