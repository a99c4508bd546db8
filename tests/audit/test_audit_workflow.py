"""The audit stage in the pipeline: before training (a gate) and after the evaluation."""

import json

from conftest import job_inputs, jobs_run, PIPELINE_CONFIG, run_snakemake, write_config

import pytest

pytestmark = pytest.mark.workflow


def test_the_bias_audit_runs_before_training_and_after_the_evaluation(pipeline_run):
    workdir, _, log = pipeline_run
    data = json.loads((workdir / "results/audit/data.json").read_text())
    assert set(data["columns"]) == {"image:brightness", "image:contrast", "image:sharpness", "image:size",
                                    "image:aspect_ratio"}  # the digits have no metadata: image slices
    models = json.loads((workdir / "results/audit/groups.json").read_text())
    assert set(models["per_seed"]) == {"42", "43"} and models["metric"] == "accuracy"
    brightness = models["per_seed"]["42"]["image:brightness"]
    assert {g["group"] for g in brightness["groups"]} == {"low", "mid", "high"}
    assert sum(g["n"] for g in brightness["groups"]) == json.loads(
        (workdir / "results/evaluate/summary.json").read_text())["n_test"]
    table = (workdir / "results/audit/group_metrics.csv").read_text().splitlines()
    assert table[0].startswith("seed,column,group,n,judged,accuracy,balanced_accuracy,recall:0")
    assert (workdir / "results/audit/audit.md").read_text().startswith("# Bias audit")
    assert (workdir / "results/audit/group_metrics.png").stat().st_size > 0
    jobs = job_inputs(log)
    assert {"audit_data", "audit_models"} <= {rule for rule, _ in jobs}
    gated = [inputs for rule, inputs in jobs if rule in ("explore_point", "tune_search", "check_seal", "final_train")]
    assert gated and all("results/audit/data_audit_passed.json" in inputs for inputs in gated)


def test_a_changed_audit_threshold_that_still_passes_reruns_no_training(pipeline_run, tmp_path):
    workdir, _, _ = pipeline_run
    config = write_config(tmp_path, {**PIPELINE_CONFIG, "audit": {"association_warning": 0.9}})
    result = run_snakemake(workdir, "--configfile", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    ran = jobs_run(result.stdout + result.stderr)
    assert "audit_data" in ran and not ran & {"probe_batch_size", "explore_point", "tune_search", "final_train"}, ran


def test_a_failing_data_audit_stops_the_run_before_any_training(tmp_path):
    """On the digits, sharpness goes with the digit (Cramér's V 0.41): a failure threshold of 0.35 stops it."""
    config = write_config(tmp_path, {**PIPELINE_CONFIG, "audit": {"association_failure": 0.35}})
    result = run_snakemake(tmp_path, "--configfile", str(config))
    assert result.returncode != 0
    assert "the data audit failed: image:sharpness is associated with the label" in result.stderr
    ran = {rule for rule, _ in job_inputs(result.stderr)}
    assert "audit_data" in ran and not ran & {"probe_batch_size", "explore_point", "tune_search", "final_train"}
    assert "Cramér" in (tmp_path / "logs/audit/audit_data.log").read_text()  # the evidence is kept
