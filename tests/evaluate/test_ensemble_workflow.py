"""evaluation.deploy: ensemble after the pipeline run: one model averaging the final models, one
sealed evaluation, reported beside the single models, exported, predicted and monitored."""

import json
import shutil

import numpy as np
import pandas as pd
import yaml

from conftest import jobs_run, run_snakemake

import pytest

pytestmark = pytest.mark.workflow


def test_the_ensemble_is_evaluated_once_reported_exported_and_predicts_its_evaluation(pipeline_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    extra = workdir / "ensemble.yaml"
    test_batch = {"path": str(workdir / "results/split/test.csv"), "root": str(workdir / "results/data/digits")}
    extra.write_text(yaml.safe_dump({"evaluation": {"deploy": "ensemble"},
                                     "predict": {"batches": {"test": test_batch}}}))
    result = run_snakemake(workdir, "--configfile", str(pipeline_run[1]), str(extra))
    assert result.returncode == 0, result.stderr[-4000:]
    ran = jobs_run(result.stderr)
    assert {"ensemble_model", "evaluate_ensemble", "deploy_model", "export_model", "predict_batch"} <= ran
    assert not ran & {"final_train", "evaluate_model", "tune_search"}  # no model trained or evaluated again
    evaluate = workdir / "results/evaluate"
    seeds = [json.loads(p.read_text())["seed"] for p in sorted(evaluate.glob("seed_*/metrics.json"))]
    tables = [pd.read_csv(evaluate / f"seed_{s}/predictions.csv", dtype={"label": str}) for s in seeds]
    columns = [c for c in tables[0] if c.startswith("p_")]
    mean = np.mean([t[columns].to_numpy() for t in tables], axis=0)
    ensemble = pd.read_csv(evaluate / "ensemble/predictions.csv", dtype={"label": str, "predicted": str})
    assert np.abs(ensemble[columns].to_numpy() - mean).max() < 2e-6
    metrics = json.loads((evaluate / "ensemble/metrics.json").read_text())
    assert metrics["members"] == seeds and metrics["seal"]["evaluation"] == 1
    assert metrics["metrics"]["accuracy"] == pytest.approx((ensemble["label"] == ensemble["predicted"]).mean())
    # The ensemble model itself predicts what its evaluation averaged (predict stage, deployed = ensemble).
    predicted = pd.read_csv(workdir / "results/predict/test/predictions.csv", dtype={"label": str, "predicted": str})
    assert np.abs(predicted[columns].to_numpy() - ensemble[columns].to_numpy()).max() < 1e-5
    # Reported beside the single models, in the summary, the card, the report and dvc's metrics.
    summary = json.loads((evaluate / "summary.json").read_text())
    row = summary["ensemble"]["metrics"]["accuracy"]
    assert row["ensemble"] == metrics["metrics"]["accuracy"]
    assert row["gain"] == pytest.approx(row["ensemble"] - summary["aggregate"]["accuracy"]["mean"])
    assert "## Ensemble of the 2 final models" in (evaluate / "summary.md").read_text()
    assert json.loads((evaluate / "test_metrics.json").read_text())["ensemble"]["accuracy"] == row["ensemble"]
    card = json.loads((evaluate / "deployed/model.json").read_text())
    assert card["members"] == seeds and card["chosen"]["rule"] == "ensemble"
    assert card["test"]["accuracy"] == metrics["metrics"]["accuracy"]
    assert "Deployed: the ensemble of the final models of seeds" in (workdir / "results/export/model_card.md").read_text()
    export = json.loads((workdir / "results/export/export.json").read_text())
    assert export["ensemble_of"] == 2 and export["formats"]["float32"]["agreement_with_keras"] == 1.0
    assert export["formats"]["float32"]["bytes"] > 1.8 * export["ensemble_member"]["float32_bytes"]
    # The saliency maps of the ensemble: its members' Grad-CAM maps averaged.
    assert json.loads((evaluate / "saliency/saliency.json").read_text())["model"] == "ensemble of 2"
    html = (workdir / "results/report/report.html").read_text()
    assert "Ensemble of the 2 final models (deployed)" in html and "ensemble of 2" in html
    # One evaluation on record; a second run evaluates nothing again.
    events = [json.loads(line) for line in (evaluate / "seal/events.jsonl").read_text().splitlines()]
    assert [e["seed"] for e in events].count("ensemble") == 1
    again = run_snakemake(workdir, "--configfile", str(pipeline_run[1]), str(extra))
    assert again.returncode == 0 and "Nothing to be done" in again.stderr, again.stderr[-2000:]


def test_an_ensemble_of_one_model_is_refused_when_the_workflow_loads(pipeline_run, tmp_path):
    extra = tmp_path / "one.yaml"
    extra.write_text(yaml.safe_dump({"evaluation": {"deploy": "ensemble"}, "final": {"n_seeds": 1}}))
    result = run_snakemake(pipeline_run[0], "-n", "--configfile", str(pipeline_run[1]), str(extra))
    assert result.returncode != 0 and "evaluation.deploy is ensemble, but there is one final model" in result.stderr
