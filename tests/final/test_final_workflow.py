"""The final stage in the pipeline run, and its load-time checks."""

import json

from conftest import job_inputs, run_snakemake, write_config

import pytest

pytestmark = pytest.mark.workflow


def test_final_trainings_fan_out_over_seeds_as_separate_jobs(pipeline_run):
    workdir, _, log = pipeline_run
    jobs = job_inputs(log)
    finals = [inputs for rule, inputs in jobs if rule == "final_train"]
    assert len(finals) == 2
    # folds: rotate: seed 42 on fold 0, seed 43 on fold 1, each its own job.
    assert {next(p for p in inputs if p.endswith("train.csv")) for inputs in finals} == {
        "results/split/fold_0/train.csv", "results/split/fold_1/train.csv"}
    best = json.loads((workdir / "results/tune/best_hyperparameters.json").read_text())
    for seed, fold in ((42, 0), (43, 1)):
        run = workdir / f"results/final/seed_{seed}"
        for name in ("model.keras", "history.csv", "curves.png", "weight_histograms.png"):
            assert (run / name).stat().st_size > 0, name
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["seed"] == seed and metrics["fold"] == fold
        assert metrics["applied"]["model.dropout"] == best["hyperparameters"]["model.dropout"]
        assert metrics["decisions"]["config"]["seed"] == seed


def test_bad_targets_and_final_settings_stop_before_any_job(tmp_path):
    cases = [
        ({"targets": [{"metric": "recall", "class": "eleven", "min": 0.9}]},
         "targets[0]: class 'eleven' does not exist in the data (its classes: 0, 1, 2"),
        ({"targets": [{"metric": "sensitivity", "min": 0.9}]}, "needs a class"),
        ({"targets": [{"metric": "auc", "min": 0.9}]}, "targets.0.metric"),
        ({"split": {"n_folds": 1}, "final": {"folds": "rotate"}}, "nothing to rotate over"),
        ({"split": {"n_folds": 2}, "final": {"fold": 3}}, "final.fold is 3"),
        ({"final": {"n_seeds": 0}}, "final.n_seeds"),
        ({"tune": {"enabled": True, "max_trials": 0}}, "tune.max_trials"),
        ({"data": {"group_columns": []}, "audit": {"group_columns": ["sex"]}},
         "audit.group_columns names 'sex', which is not in data.group_columns"),
        ({"carbon": {"country_iso_code": "XYZ"}}, "carbon.country_iso_code is 'XYZ', which is not a country"),
        ({"carbon": {"country_iso_code": "FRA", "region": "paris"}}, "regions only for USA and CAN"),
    ]
    for overrides, message in cases:
        config = write_config(tmp_path, overrides)
        result = run_snakemake(tmp_path, "--configfile", str(config), "--dry-run")
        assert result.returncode != 0, overrides
        assert message in result.stderr, (message, result.stderr[-2000:])
        assert not (tmp_path / "results").exists()
