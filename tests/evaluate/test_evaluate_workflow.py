"""The evaluation stage in the pipeline run: targets, deployment, the sealed test set."""

import json
import shutil

import pytest

from conftest import job_inputs, jobs_run, PIPELINE_CONFIG, REPO, run_snakemake, write_config

pytestmark = pytest.mark.workflow


def test_test_evaluation_checks_targets_and_deploys_the_median_model(pipeline_run):
    workdir, _, log = pipeline_run
    summary = json.loads((workdir / "results/evaluate/summary.json").read_text())
    assert summary["seeds"] == [42, 43] and summary["n_test"] > 300
    assert [t["met"] for t in summary["targets"]][:2] == [True, False] and summary["all_targets_met"] is False
    (threshold,) = summary["thresholds"]  # the sensitivity target on 8, chosen on each model's validation
    assert threshold["class"] == "8" and len(threshold["thresholds"]) == 2 and threshold["applied"] is False
    assert threshold["test_sensitivity"]["thresholded"] >= threshold["test_sensitivity"]["plain"]
    for entry in summary["thresholds_per_seed"].values():  # chosen on validation to meet the target there
        (chosen,) = entry["classes"]
        met = chosen["validation"]["thresholded" if chosen["needed"] else "plain"]["sensitivity"]
        assert met >= 0.6 and (chosen["threshold"] is None) == (not chosen["needed"])
    accuracy = summary["aggregate"]["accuracy"]
    values = list(accuracy["values"].values())
    assert accuracy["mean"] == pytest.approx(sum(values) / 2) and accuracy["low"] < accuracy["mean"]
    for seed in (42, 43):
        evaluation = json.loads((workdir / f"results/evaluate/seed_{seed}/metrics.json").read_text())
        assert evaluation["seal"]["status"] == "first"
        validation = (workdir / f"results/evaluate/seed_{seed}/validation_predictions.csv").read_text().splitlines()
        assert validation[0].startswith("path,label,group,predicted,correct,confidence,p_0,")
        predictions = (workdir / f"results/evaluate/seed_{seed}/predictions.csv").read_text().splitlines()
        assert predictions[0].startswith("path,label,group,predicted,correct,confidence,p_0,")
        assert len(predictions) - 1 == summary["n_test"]
    markdown = (workdir / "results/evaluate/summary.md").read_text()
    assert "| ece <= 0.0 |" in markdown and "NOT all met" in markdown
    # The images both models got wrong, from their saved test predictions.
    import pandas as pd

    tables = [pd.read_csv(workdir / f"results/evaluate/seed_{seed}/predictions.csv", dtype=str) for seed in (42, 43)]
    missed = set(tables[0].loc[tables[0]["correct"] == "False", "path"]) & set(
        tables[1].loc[tables[1]["correct"] == "False", "path"])
    agreed = summary["agreed_errors"]
    assert (agreed["models"], agreed["n_test"], agreed["count"]) == (2, summary["n_test"], len(missed))
    assert {m["path"] for m in agreed["images"]} <= missed
    assert "## Images every model gets wrong" in markdown
    card = json.loads((workdir / "results/evaluate/deployed/model.json").read_text())
    assert card["chosen"]["rule"] == "median_validation" and card["chosen"]["seed"] in (42, 43)
    assert card["operating_thresholds"]["classes"][0]["class"] == "8"
    source = workdir / f"results/final/seed_{card['chosen']['seed']}/model.keras"
    assert (workdir / "results/evaluate/deployed/model.keras").read_bytes() == source.read_bytes()
    assert "target ece (min None, max 0.0)" in log and "NOT MET" in log
    assert "time per stage" in log and "final" in log.split("time per stage", 1)[1]


def test_only_the_evaluation_rule_reads_the_test_manifest(pipeline_run):
    _, _, log = pipeline_run
    jobs = job_inputs(log)
    readers = {rule for rule, inputs in jobs if "results/split/test.csv" in inputs}
    # export_model measures the deployed, already sealed model's TFLite copies: it chooses nothing.
    assert readers == {"evaluate_model", "export_model"}
    assert {rule for rule, _ in jobs} >= {"split_data", "explore_point", "tune_search", "final_train", "deploy_model"}
    # And no script or library module opens it by another route.
    # verify.py is the reviewers' check: it re-evaluates pulled models and records nothing;
    # retrain.py copies the manifest as the sealed test set of a retraining; layout.py names
    # a finished run's files for these two tools; evaluate_ensemble.py hashes it for the ensemble's
    # seal (it averages the members' sealed test predictions and opens no test image).
    allowed = {"evaluate_model.py", "export_model.py", "verify.py", "retrain.py", "layout.py", "evaluate_ensemble.py"}
    for path in [*(REPO / "scripts").rglob("*.py"), *(REPO / "imgclf").rglob("*.py")]:
        text = path.read_text()
        if path.name not in allowed:
            assert "input.test" not in text and "test.csv" not in text, path
    rules = {p.name: p.read_text() for p in (REPO / "rules").glob("*.smk")}
    assert {name for name, text in rules.items() if "test.csv" in text} == {"common.smk"}  # TEST_MANIFEST
    assert {name for name, text in rules.items() if "TEST_MANIFEST" in text} == {
        "common.smk", "split.smk", "evaluate.smk", "export.smk"}


def test_the_sealed_test_set_needs_a_reason_to_be_evaluated_again(pipeline_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    model = workdir / "results/final/seed_42/model.keras"
    sealed_model = model.read_bytes()
    changed = {**PIPELINE_CONFIG, "final": {**PIPELINE_CONFIG["final"], "epochs": 2}}
    config = write_config(workdir, changed)
    result = run_snakemake(workdir, "--configfile", str(config))
    assert result.returncode != 0
    assert "the test set is sealed: final model seed 42" in result.stderr
    assert "config.train.epochs: 1 -> 2" in result.stderr and "evaluation.unseal_reason" in result.stderr
    assert model.read_bytes() == sealed_model  # refused before the training could replace it
    # With a reason: loud warning, retrained, evaluated again, and on record.
    unsealed = {**changed, "evaluation": {"unseal_reason": "a reviewer asked for two epochs"}}
    config = write_config(workdir, unsealed)
    result = run_snakemake(workdir, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "WARNING: evaluation.unseal_reason is set" in result.stderr
    assert "TEST SET UNSEALED for seed 42" in result.stderr
    events = [json.loads(line) for line in (workdir / "results/evaluate/seal/events.jsonl").read_text().splitlines()]
    assert sorted((e["seed"], e["status"]) for e in events) == [(42, "first"), (42, "unsealed"),
                                                                 (43, "first"), (43, "unsealed")]
    assert all(e["reason"] == "a reviewer asked for two epochs" for e in events if e["status"] == "unsealed")
    # The record stays after the reason is removed and the summary is rebuilt.
    config = write_config(workdir, {**changed, "targets": [{"metric": "accuracy", "min": 0.1}]})
    result = run_snakemake(workdir, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    # The summary and what reads it (the deployed model's card is rewritten: its saliency maps are
    # drawn again); no training, no evaluation, no audit of the predictions.
    assert jobs_run(result.stderr) == {"evaluation_summary", "deploy_model", "carbon_report", "report_galleries",
                                       "report_html", "reproducibility_record", "export_model", "model_card",
                                       "saliency_maps", "all"}
    markdown = (workdir / "results/evaluate/summary.md").read_text()
    assert "Warning: the sealed test set was evaluated again" in markdown
    assert 'reason given: "a reviewer asked for two epochs"; changed: config.train.epochs' in markdown


def test_a_config_naming_other_data_is_refused_before_any_job_rewrites_the_sealed_run(pipeline_run, tmp_path):
    from PIL import Image

    workdir = tmp_path / "copy"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    kept = {path: path.read_bytes() for path in [workdir / "results/data/index.csv",
                                                 *sorted((workdir / "results/split").rglob("*.csv"))]}
    images = tmp_path / "other_data"
    for label in ("a", "b"):
        (images / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 16), (60 * i, 0, 0)).save(images / label / f"{i}.png")
    other = {**PIPELINE_CONFIG, "data": {"source": "folder", "root": str(images), "image_size": [16, 16]}}
    result = run_snakemake(workdir, "--configfile", str(write_config(workdir, other)))
    assert result.returncode != 0
    assert "this config names other data than that run" in result.stderr
    assert 'data.source: "digits" -> "folder"' in result.stderr and "--directory <folder>" in result.stderr
    assert "Job stats:" not in result.stderr  # refused when the workflow loaded, before planning a job
    assert all(path.read_bytes() == content for path, content in kept.items())


def test_test_time_augmentation_is_reported_beside_the_plain_evaluation(pipeline_run, tmp_path):
    workdir = tmp_path / "tta"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    plain = json.loads((workdir / "results/evaluate/summary.json").read_text())
    config = write_config(workdir, {**PIPELINE_CONFIG, "evaluation": {**PIPELINE_CONFIG.get("evaluation", {}),
                                                                       "tta": True}})
    # Targets first: --configfile takes every path after it.
    result = run_snakemake(workdir, "results/evaluate/summary.json", "results/report/report.html",
                           "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    # Re-evaluated (the same sealed decisions: no reason needed), not retrained.
    assert "final_train" not in jobs_run(result.stderr) and "evaluate_model" in jobs_run(result.stderr)
    assert "with test-time augmentation (flips): accuracy" in result.stderr
    summary = json.loads((workdir / "results/evaluate/summary.json").read_text())
    aggregate = summary["aggregate"]
    assert {"tta.accuracy", "tta.balanced_accuracy", "tta.log_loss"} <= set(aggregate)
    # The plain figures are untouched: the targets still read them.
    assert aggregate["accuracy"]["mean"] == plain["aggregate"]["accuracy"]["mean"]
    assert summary["targets"] == plain["targets"]
    assert "Rows `tta.*`: test-time augmentation" in (workdir / "results/evaluate/summary.md").read_text()
    assert "accuracy with test-time flips" in (workdir / "results/report/report.html").read_text()
    events = [json.loads(line) for line in (workdir / "results/evaluate/seal/events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events].count("same") == 2
