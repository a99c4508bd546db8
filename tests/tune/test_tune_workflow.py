"""The tuning stage in the pipeline run."""

import json

from conftest import run_snakemake

import pytest

pytestmark = pytest.mark.workflow


def test_tuning_builds_on_the_exploration_winner(pipeline_run):
    workdir, config, _ = pipeline_run
    best = json.loads((workdir / "results/tune/best_hyperparameters.json").read_text())
    winner = json.loads((workdir / "results/explore/opt/summary.json").read_text())["winner"]
    assert best["fixed_from_study"]["train.optimizer"] == winner["train.optimizer"]
    assert set(best["hyperparameters"]) == {"model.dropout"} and best["trials"] == 2
    trials = (workdir / "results/tune/trials.csv").read_text().splitlines()
    assert len(trials) == 3 and "model.dropout" in trials[0]
    for name in ("objective_per_trial.png", "hyperparameters.png", "top_trials_curves.png"):
        assert (workdir / "results/tune" / name).stat().st_size > 0
    dry = run_snakemake(workdir, "--configfile", str(config), "--dry-run")
    assert "Nothing to be done" in dry.stdout + dry.stderr
