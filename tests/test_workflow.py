"""The real Snakefile through Snakemake, in temporary working directories."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from conftest import REPO, make_folder, run_snakemake, save, write_bad_file

pytestmark = pytest.mark.workflow


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


#: Targets of the tests about data and split: the default target would train.
UNTIL_SPLIT = ("results/data/validation.md", "results/splits/split.json")

SPLIT_FILES = ["test.csv", "split.json"] + [f"fold_{k}/{s}.csv" for k in range(3) for s in ("train", "val")]


def jobs_run(log: str) -> set[str]:
    """Rule names in Snakemake's "Job stats" table."""
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return {line.split()[0] for line in table.splitlines()[3:] if line.strip()}


def snapshot(workdir: Path) -> dict[str, bytes]:
    return {name: (workdir / "results" / "splits" / name).read_bytes() for name in SPLIT_FILES}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The default digits data through validation and split, run twice from scratch."""
    runs = []
    for name in ("first", "second"):
        workdir = tmp_path_factory.mktemp(name)
        config = write_config(workdir, {"data": {"source": "digits", "digits": {"size": 16},
                                                 "image_size": [16, 16]}, "split": {"n_folds": 3},
                                        "explore": {"studies": []}})
        result = run_snakemake(workdir, *UNTIL_SPLIT, "--configfile", str(config))
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(workdir)
    return runs


def test_default_data_produces_index_report_and_manifests(digits_run):
    workdir = digits_run[0]
    index = (workdir / "results/data/index.csv").read_text().splitlines()
    assert index[0].startswith("path,sha256,label,width,height,mode,format")
    assert len(index) == 1 + 1797
    assert (workdir / "results/data/validation.md").read_text().startswith("# Data validation")
    for name in SPLIT_FILES:
        assert (workdir / "results/splits" / name).is_file(), name
    test_rows = (workdir / "results/splits/test.csv").read_text().splitlines()
    assert test_rows[0] == "path,sha256,label,group" and 350 <= len(test_rows) - 1 <= 370
    assert (workdir / "logs/data/validate_data.log").read_text()
    assert (workdir / "logs/benchmarks/validate_data.tsv").is_file()


def test_same_config_reproduces_manifests_byte_for_byte(digits_run):
    assert snapshot(digits_run[0]) == snapshot(digits_run[1])


def test_changed_seed_rewrites_the_manifests_and_rerun_is_a_no_op(digits_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(digits_run[0], workdir, symlinks=True)
    config = workdir / "config.yaml"
    result = run_snakemake(workdir, *UNTIL_SPLIT, "--configfile", str(config), "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr
    before = snapshot(workdir)
    result = run_snakemake(workdir, *UNTIL_SPLIT, "--configfile", str(config), "--config", "seed=7")
    assert result.returncode == 0, result.stderr[-3000:]
    assert jobs_run(result.stderr) == {"split_data"}
    after = snapshot(workdir)
    assert after["test.csv"] != before["test.csv"]


def test_lint_is_clean():
    result = run_snakemake(REPO, "--lint")
    assert result.returncode == 0
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


def test_config_typo_stops_before_any_job(tmp_path):
    config = write_config(tmp_path, {"split": {"n_fold": 3}})
    result = run_snakemake(tmp_path, "--configfile", str(config))
    assert result.returncode != 0
    assert "unknown key 'split.n_fold'; did you mean 'split.n_folds'?" in result.stderr
    assert not (tmp_path / "results").exists()


def test_wrong_type_on_the_command_line_is_rejected(tmp_path):
    config = write_config(tmp_path, {})
    result = run_snakemake(tmp_path, "--configfile", str(config), "--config", "seed=abc")
    assert result.returncode != 0 and "key 'seed'" in result.stderr


def test_bad_data_fails_the_workflow_naming_the_files_and_writes_no_outputs(tmp_path):
    root = make_folder(tmp_path / "images", {"cat": 12, "dog": 12})
    write_bad_file(root / "dog" / "broken.jpg", "truncated.jpg")
    config = write_config(tmp_path, {"data": {"source": "folder", "root": str(root)}})
    result = run_snakemake(tmp_path, "--configfile", str(config))
    assert result.returncode != 0
    assert "dog/broken.jpg" in result.stderr and "truncated" in result.stderr
    assert not (tmp_path / "results" / "data" / "index.csv").exists()
    assert not (tmp_path / "results" / "splits").exists()
    log = (tmp_path / "logs/data/validate_data.log").read_text()
    assert "Nothing was written to results/data" in log
    assert "dog/broken.jpg" in log
    assert "dog/broken.jpg" in (tmp_path / "logs/data/validation_report.md").read_text()
    # Dropping bad files lets the run go on, and the report says what was dropped.
    config = write_config(tmp_path, {"data": {"source": "folder", "root": str(root)},
                                     "validation": {"on_bad_file": "drop"}, "split": {"n_folds": 2}})
    result = run_snakemake(tmp_path, *UNTIL_SPLIT, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dog/broken.jpg" in (tmp_path / "results/data/validation.md").read_text()
    assert "broken" not in (tmp_path / "results/data/index.csv").read_text()


def test_an_image_added_to_a_class_folder_reruns_validation(tmp_path):
    root = make_folder(tmp_path / "images", {"cat": 12, "dog": 12})
    config = write_config(tmp_path, {"data": {"source": "folder", "root": str(root)},
                                     "split": {"n_folds": 2}})
    assert run_snakemake(tmp_path, *UNTIL_SPLIT, "--configfile", str(config)).returncode == 0
    dry = run_snakemake(tmp_path, *UNTIL_SPLIT, "--configfile", str(config), "--dry-run")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    make_folder(root, {"dog": 1}, start_seed=500)  # dog_000.png replaced by a new image
    (root / "dog" / "dog_000.png").rename(root / "dog" / "new_dog.png")
    result = run_snakemake(tmp_path, *UNTIL_SPLIT, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"validate_data", "split_data"} <= jobs_run(result.stderr)
    assert "dog/new_dog.png" in (tmp_path / "results/data/index.csv").read_text()


def test_missing_data_root_stops_before_any_job_even_with_old_results(digits_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(digits_run[0], workdir, symlinks=True)
    config = write_config(workdir, {"data": {"source": "folder", "root": "no/such/folder"}})
    result = run_snakemake(workdir, "--configfile", str(config))
    assert result.returncode != 0
    assert "data.root is 'no/such/folder', which is not an existing folder" in result.stderr


def test_a_changed_validation_setting_reruns_validation(tmp_path):
    root = make_folder(tmp_path / "images", {"cat": 12, "dog": 12})
    config = write_config(tmp_path, {"data": {"source": "folder", "root": str(root)},
                                     "split": {"n_folds": 2}})
    assert run_snakemake(tmp_path, *UNTIL_SPLIT, "--configfile", str(config)).returncode == 0
    config = write_config(tmp_path, {"data": {"source": "folder", "root": str(root)},
                                     "split": {"n_folds": 2}, "validation": {"min_images_per_class": 50}})
    result = run_snakemake(tmp_path, *UNTIL_SPLIT, "--configfile", str(config))
    assert result.returncode != 0
    assert "class_too_small" in result.stderr


def test_exploration_study_runs_end_to_end(tmp_path):
    """Probe, one job per point, summary: through the real Snakefile."""
    config = write_config(tmp_path, {
        "data": {"source": "digits", "digits": {"size": 16}, "image_size": [16, 16]},
        "split": {"n_folds": 2},
        "train": {"batch_size": "auto", "epochs": 2, "tensorboard_histogram_freq": 0},
        "batch_probe": {"sizes": [16, 32], "steps": 2},
        "explore": {"studies": [{
            "name": "opt", "question": "Which optimizer?",
            "scientific": {"train.optimizer": ["adam", "sgd"]},
            "nuisance": {"train.learning_rate": {"min": 0.001, "max": 0.05, "samples": 2}},
            "fixed": {"train.epochs": 2}}]}})
    result = run_snakemake(tmp_path, "results/explore/opt/summary.md", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    assert jobs_run(result.stderr) >= {"probe_batch_size", "explore_point", "explore_summary"}
    assert result.stderr.count("Finished jobid") >= 4 + 1 + 1
    study = tmp_path / "results/explore/opt"
    summary = json.loads((study / "summary.json").read_text())
    assert summary["winner"]["train.optimizer"] in ("adam", "sgd")
    assert len(summary["rows"]) == 4 and {r["status"] for r in summary["rows"]} <= {"completed", "early_stopped", "diverged"}
    assert summary["answer"].startswith("Best: train.optimizer=")
    for point in ("p00", "p01", "p02", "p03"):
        for name in ("curves.png", "weight_histograms.png", "history.csv", "metrics.json"):
            assert (study / point / name).stat().st_size > 0
        assert not (study / point / "resume").exists()
    assert (study / "best_curves.png").is_file() and (study / "objective.png").is_file()
    assert "Which optimizer?" in (study / "summary.md").read_text()
    assert json.loads((tmp_path / "results/train/batch_size.json").read_text())["chosen"] in (16, 32)


def test_bad_study_and_model_settings_stop_before_any_job(tmp_path):
    cases = [
        ({"explore": {"studies": [{"name": "s", "question": "q",
                                   "scientific": {"train.optimiser": ["adam"]}}]}},
         "'train.optimiser' is not a config key"),
        ({"explore": {"studies": [{"name": "s", "question": "q",
                                   "scientific": {"train.optimizer": ["adam", "nadam"]}}]}},
         "train.optimizer"),
        ({"model": {"architecture": "resnet50"}, "data": {"image_size": [16, 16]}},
         "needs inputs of at least 32x32"),
        ({"model": {"architecture": "resnet50", "weights": "missing.weights.h5"}},
         "neither none, imagenet, nor an existing file"),
        ({"tune": {"enabled": True, "search_space": []}}, "tune.search_space is empty"),
        ({"split": {"n_folds": 2}, "explore": {"fold": 2}}, "explore.fold is 2, but split.n_folds = 2"),
        ({"tune": {"enabled": True, "fix_from_study": "nope"}}, "'nope', which is not an exploration study"),
        ({"tune": {"enabled": True, "search_space": [{"name": "train.learning_rate", "type": "float",
                                                      "min": 0.1, "max": 0.01}]}}, "needs min < max"),
    ]
    for overrides, message in cases:
        config = write_config(tmp_path, overrides)
        result = run_snakemake(tmp_path, "--configfile", str(config), "--dry-run")
        assert result.returncode != 0, overrides
        assert message in result.stderr, (message, result.stderr[-2000:])


PIPELINE_CONFIG = {
    "data": {"source": "digits", "digits": {"size": 16}, "image_size": [16, 16]},
    "split": {"n_folds": 2},
    "train": {"batch_size": 32, "epochs": 1, "tensorboard_histogram_freq": 0},
    "explore": {"studies": [{"name": "opt", "question": "Which optimizer?",
                             "scientific": {"train.optimizer": ["adam", "sgd"]},
                             "nuisance": {"train.learning_rate": [0.01]}}]},
    "tune": {"enabled": True, "max_trials": 2, "epochs": 1, "data_fraction": 0.5,
             "fix_from_study": "opt",
             "search_space": [{"name": "model.dropout", "type": "float", "min": 0.0, "max": 0.5}]},
    "final": {"n_seeds": 2, "folds": "rotate"},
    "targets": [{"metric": "accuracy", "min": 0.2}, {"metric": "ece", "max": 0.0}],
    "export": {"latency_runs": 10, "representative_images": 50},
}


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """The whole default target on tiny digits: exploration, tuning, 2 final seeds, evaluation."""
    workdir = tmp_path_factory.mktemp("pipeline")
    config = write_config(workdir, PIPELINE_CONFIG)
    result = run_snakemake(workdir, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config, result.stderr


def job_inputs(log: str) -> list[tuple[str, list[str]]]:
    """(rule, input files) of every job in a Snakemake log (jobs started together share a block)."""
    jobs: list[tuple[str, list[str]]] = []
    for line in log.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and line.rstrip().endswith(":"):
            jobs.append((words[1].rstrip(":"), []))
        elif jobs and line.startswith("    input:") and not jobs[-1][1]:
            jobs[-1][1].extend(p.strip() for p in line.split(":", 1)[1].split(",") if p.strip())
    return jobs


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


def test_final_trainings_fan_out_over_seeds_as_separate_jobs(pipeline_run):
    workdir, _, log = pipeline_run
    jobs = job_inputs(log)
    finals = [inputs for rule, inputs in jobs if rule == "final_train"]
    assert len(finals) == 2
    # folds: rotate: seed 42 on fold 0, seed 43 on fold 1, each its own job.
    assert {next(p for p in inputs if p.endswith("train.csv")) for inputs in finals} == {
        "results/splits/fold_0/train.csv", "results/splits/fold_1/train.csv"}
    best = json.loads((workdir / "results/tune/best_hyperparameters.json").read_text())
    for seed, fold in ((42, 0), (43, 1)):
        run = workdir / f"results/final/seed_{seed}"
        for name in ("model.keras", "history.csv", "curves.png", "weight_histograms.png"):
            assert (run / name).stat().st_size > 0, name
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["seed"] == seed and metrics["fold"] == fold
        assert metrics["applied"]["model.dropout"] == best["hyperparameters"]["model.dropout"]
        assert metrics["decisions"]["config"]["seed"] == seed


def test_test_evaluation_checks_targets_and_deploys_the_median_model(pipeline_run):
    workdir, _, log = pipeline_run
    summary = json.loads((workdir / "results/evaluate/summary.json").read_text())
    assert summary["seeds"] == [42, 43] and summary["n_test"] > 300
    assert [t["met"] for t in summary["targets"]] == [True, False] and summary["all_targets_met"] is False
    accuracy = summary["aggregate"]["accuracy"]
    values = list(accuracy["values"].values())
    assert accuracy["mean"] == pytest.approx(sum(values) / 2) and accuracy["low"] < accuracy["mean"]
    for seed in (42, 43):
        evaluation = json.loads((workdir / f"results/evaluate/seed_{seed}/metrics.json").read_text())
        assert evaluation["seal"]["status"] == "first"
        predictions = (workdir / f"results/evaluate/seed_{seed}/predictions.csv").read_text().splitlines()
        assert predictions[0].startswith("path,label,group,predicted,correct,confidence,p_0,")
        assert len(predictions) - 1 == summary["n_test"]
    markdown = (workdir / "results/evaluate/summary.md").read_text()
    assert "| ece <= 0.0 |" in markdown and "NOT all met" in markdown
    card = json.loads((workdir / "results/model/model.json").read_text())
    assert card["chosen"]["rule"] == "median_validation" and card["chosen"]["seed"] in (42, 43)
    source = workdir / f"results/final/seed_{card['chosen']['seed']}/model.keras"
    assert (workdir / "results/model/model.keras").read_bytes() == source.read_bytes()
    assert "target ece (min None, max 0.0)" in log and "NOT MET" in log
    assert "time per stage" in log and "final" in log.split("time per stage", 1)[1]


def test_only_the_evaluation_rule_reads_the_test_manifest(pipeline_run):
    _, _, log = pipeline_run
    jobs = job_inputs(log)
    readers = {rule for rule, inputs in jobs if "results/splits/test.csv" in inputs}
    # export_model measures the deployed, already sealed model's TFLite copies: it chooses nothing.
    assert readers == {"evaluate_model", "export_model"}
    assert {rule for rule, _ in jobs} >= {"split_data", "explore_point", "tune", "final_train", "deploy_model"}
    # And no script or library module opens it by another route.
    # verify.py is the reviewers' check: it re-evaluates pulled models and records nothing;
    # retrain.py copies the manifest as the sealed test set of a retraining.
    for path in [*(REPO / "scripts").glob("*.py"), *(REPO / "imgclf").rglob("*.py")]:
        text = path.read_text()
        if path.name not in ("evaluate_model.py", "verify.py", "export_model.py", "retrain.py"):
            assert "input.test" not in text and "test.csv" not in text, path
    rules = {p.name: p.read_text() for p in (REPO / "rules").glob("*.smk")}
    assert {name for name, text in rules.items() if "splits/test.csv" in text} == {"split.smk", "evaluate.smk",
                                                                                    "deploy.smk"}


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
    gated = [inputs for rule, inputs in jobs if rule in ("explore_point", "tune", "check_seal", "final_train")]
    assert gated and all("results/audit/data_audit_passed.json" in inputs for inputs in gated)


def test_a_changed_audit_threshold_that_still_passes_reruns_no_training(pipeline_run, tmp_path):
    workdir, _, _ = pipeline_run
    config = write_config(tmp_path, {**PIPELINE_CONFIG, "audit": {"association_warning": 0.9}})
    result = run_snakemake(workdir, "--configfile", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    ran = jobs_run(result.stdout + result.stderr)
    assert "audit_data" in ran and not ran & {"probe_batch_size", "explore_point", "tune", "final_train"}, ran


def test_a_failing_data_audit_stops_the_run_before_any_training(tmp_path):
    """On the digits, sharpness goes with the digit (Cramér's V 0.41): a failure threshold of 0.35 stops it."""
    config = write_config(tmp_path, {**PIPELINE_CONFIG, "audit": {"association_failure": 0.35}})
    result = run_snakemake(tmp_path, "--configfile", str(config))
    assert result.returncode != 0
    assert "the data audit failed: image:sharpness is associated with the label" in result.stderr
    ran = {rule for rule, _ in job_inputs(result.stderr)}
    assert "audit_data" in ran and not ran & {"probe_batch_size", "explore_point", "tune", "final_train"}
    assert "Cramér" in (tmp_path / "logs/audit/audit_data.log").read_text()  # the evidence is kept


def test_every_training_job_records_its_emissions_and_the_report_sums_them(pipeline_run):
    workdir, _, log = pipeline_run
    jobs = workdir / "results/carbon/jobs"
    files = sorted(str(p.relative_to(jobs)) for p in jobs.rglob("*.csv"))
    assert files == ["evaluate/seed_42.csv", "evaluate/seed_43.csv", "explore/opt/p00.csv", "explore/opt/p01.csv",
                     "final/seed_42.csv", "final/seed_43.csv", "tune.csv"]
    carbon = json.loads((workdir / "results/carbon/carbon.json").read_text())
    assert [s["stage"] for s in carbon["stages"]] == ["explore", "tune", "final", "evaluate"]
    assert carbon["total"]["attempts"] == 7 and carbon["total"]["kwh"] > 0 and carbon["killed_or_failed"] == []
    assert carbon["total"]["litres"] == pytest.approx(carbon["total"]["kwh"] * 1.8)
    assert carbon["measures"]["cpu"]["kind"] in ("estimated", "measured")
    assert carbon["intensity"][0].startswith("world average") and carbon["energy_per_point"]["metric"] == "accuracy"
    markdown = (workdir / "results/carbon/carbon.md").read_text()
    assert "| tune | 1 | 1 |" in markdown and "world average" in markdown
    assert "carbon: tracking final/seed_42" in (workdir / "logs/final/seed_42.log").read_text()


def test_the_reproducibility_record_names_everything_a_rerun_needs(pipeline_run):
    import hashlib

    workdir, _, _ = pipeline_run
    record = json.loads((workdir / "results/reproducibility.json").read_text())
    assert record["seeds"] == {"seed": 42, "final": [42, 43], "folds": {"42": 0, "43": 1}}
    for path, digest in record["manifests_sha256"].items():
        assert hashlib.sha256((workdir / path).read_bytes()).hexdigest() == digest, path
    assert set(record["manifests_sha256"]) >= {"results/data/index.csv", "results/splits/fold_1/val.csv"}
    evaluation = json.loads((workdir / "results/evaluate/seed_42/metrics.json").read_text())
    assert record["test_manifest_sha256"] == evaluation["test_manifest_sha256"]
    assert record["determinism"]["op_determinism"] is True and record["determinism"]["inter_op_threads"] == 1
    assert record["packages"]["tensorflow-cpu"] == "2.21.0" and record["hardware"]["cores"] >= 1
    assert len(record["config_sha256"]) == 64 and record["config"]["final"]["n_seeds"] == 2
    assert "commit" in record["git"]


REPORT_SECTIONS = ("summary", "config", "data", "split", "exploration", "tuning", "training", "test", "audit",
                   "carbon", "deployment", "drift", "environment")


def report_sections(page: str) -> dict[str, str]:
    parts = page.split('<section id="')[1:]
    return {part.split('"', 1)[0]: part.split("</section>", 1)[0] for part in parts}


def test_the_deployed_model_is_exported_to_tflite_and_described_by_a_model_card(pipeline_run):
    workdir, _, log = pipeline_run
    export = json.loads((workdir / "results/export/export.json").read_text())
    assert set(export["formats"]) == {"float32", "float16", "int8"}
    sizes = {name: (workdir / f"results/export/model_{name}.tflite").stat().st_size for name in export["formats"]}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    for name, entry in export["formats"].items():
        assert entry["bytes"] == sizes[name] and entry["n"] == export["n_test"]
        assert entry["accuracy"] == pytest.approx(entry["keras_accuracy"] + entry["delta"])
        assert entry["latency_ms"]["median"] > 0 and entry["per_group"]
    assert export["formats"]["float32"]["agreement_with_keras"] == 1.0
    assert export["keras"]["agreement_with_evaluation"] == 1.0  # the same predictions as the sealed evaluation
    card = json.loads((workdir / "results/model/model_card.json").read_text())
    assert set(card) >= {"model_details", "intended_use", "data", "metrics", "per_group", "carbon", "export",
                         "limitations"}
    markdown = (workdir / "results/model/model_card.md").read_text()
    assert "Intended use" in markdown and "Limitations" in markdown and "target not met: ece" in markdown


def test_the_html_report_holds_every_section_of_the_run(pipeline_run):
    workdir, config, _ = pipeline_run
    page = (workdir / "results/report/report.html").read_text()
    sections = report_sections(page)
    assert tuple(sections) == REPORT_SECTIONS
    for name, body in sections.items():
        assert "not produced" not in body and len(body) > 200, name
    summary = json.loads((workdir / "results/evaluate/summary.json").read_text())
    assert f"{summary['aggregate']['accuracy']['mean']:.4g}" in sections["summary"]
    assert "Next action" in sections["summary"] and "NOT all met" in sections["summary"]
    assert "<code>" in sections["config"] and "leak check" in sections["split"]
    assert "Which optimizer?" in sections["exploration"] and "Best:" in sections["exploration"]
    assert "bayesian search, 2 trials" in sections["tuning"]
    assert sections["training"].count("<details") == 2 and "Next action" in sections["training"]
    assert "ece &lt;= 0.0" in sections["test"] and "Misclassified" in sections["test"]
    assert "image:brightness" in sections["audit"] and "Cramér" in sections["audit"]
    assert "world average" in sections["carbon"] and "tensorflow-cpu" in sections["environment"]
    assert "TFLite int8" in sections["deployment"] and "Limitations" in sections["deployment"]
    assert "make monitor BATCH=" in sections["drift"]  # no batch monitored yet: how to
    assert page.count('<img src="data:image/png;base64,') >= 14  # figures embedded: one self-contained file
    assert "http://" not in page and "https://" not in page


def test_the_html_report_opens_in_headless_chromium(pipeline_run, tmp_path):
    """Every image loads and the console stays clean, in Debian's chromium (installed by .ci/run)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium; apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements/lock.txt")
    report = pipeline_run[0] / "results/report/report.html"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        messages = []
        page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        headings = page.evaluate("Array.from(document.querySelectorAll('section h2')).map(h => h.textContent)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(images) >= 14 and all(loaded for _, loaded in images), [alt for alt, ok in images if not ok]
    assert messages == []
    assert headings[0] == "At a glance" and headings[-1] == "Environment" and len(headings) == len(REPORT_SECTIONS)
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_snakemake_report_includes_the_pipeline_outputs(pipeline_run, tmp_path):
    workdir, config, _ = pipeline_run
    target = tmp_path / "snakemake_report.html"
    result = run_snakemake(workdir, "--configfile", str(config), "--report", str(target))
    assert result.returncode == 0, result.stderr[-3000:]
    text = target.read_text()
    for category in ("0. Report", "1. Data", "4. Final trainings", "5. Test evaluation", "6. Bias audit",
                     "7. Carbon and water"):
        assert category in text, category
    assert "report.html" in text and "sample_images.png" in text


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
    events = [json.loads(line) for line in (workdir / "results/sealed_test/events.jsonl").read_text().splitlines()]
    assert sorted((e["seed"], e["status"]) for e in events) == [(42, "first"), (42, "unsealed"),
                                                                 (43, "first"), (43, "unsealed")]
    assert all(e["reason"] == "a reviewer asked for two epochs" for e in events if e["status"] == "unsealed")
    # The record stays after the reason is removed and the summary is rebuilt.
    config = write_config(workdir, {**changed, "targets": [{"metric": "accuracy", "min": 0.1}]})
    result = run_snakemake(workdir, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    # The summary and what reads it; no training, no evaluation, no audit of the predictions.
    assert jobs_run(result.stderr) == {"evaluation_summary", "deploy_model", "carbon_report", "report_galleries",
                                       "report", "reproducibility_record", "export_model", "model_card", "all"}
    markdown = (workdir / "results/evaluate/summary.md").read_text()
    assert "Warning: the sealed test set was evaluated again" in markdown
    assert 'reason given: "a reviewer asked for two epochs"; changed: config.train.epochs' in markdown


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


def digit_batch(workdir: Path, folder: Path, paths: list[str], labels: list[str] | None, brighten: int = 0) -> Path:
    """Copies of digits images, flat (unlabelled) or in class folders, optionally brightened."""
    import numpy as np

    for i, path in enumerate(paths):
        image = Image.open(workdir / "results/default_data/digits" / path)
        if brighten:
            image = Image.fromarray(np.clip(np.asarray(image).astype(int) + brighten, 0, 255).astype("uint8"))
        target = folder / (labels[i] if labels else "") / f"{i:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target)
    return folder


def test_monitoring_new_batches_reports_drift_and_recommends(pipeline_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    # New images like the training data, that no model saw: held-out test images, every third
    # (the manifest is sorted by class).
    rows = [line.split(",") for line in (workdir / "results/splits/test.csv").read_text().splitlines()[1:]]
    same = digit_batch(workdir, tmp_path / "same", [r[0] for r in rows[::3][:120]], None)
    bright = digit_batch(workdir, tmp_path / "bright", [r[0] for r in rows[1::3][:100]],
                         [r[2] for r in rows[1::3][:100]], brighten=70)
    # Images of another size and mode are read like any image, and reported.
    colour = tmp_path / "colour"
    for i, row in enumerate(rows[2::9][:40]):
        image = Image.open(workdir / "results/default_data/digits" / row[0]).convert("RGB").resize((24, 24))
        save(image, colour / f"{i:02d}.png")
    monitor = workdir / "monitor.yaml"
    monitor.write_text(yaml.safe_dump({"monitor": {"alpha": 0.01, "permutations": 200, "batches": {
        "same": {"path": str(same)}, "bright": {"path": str(bright)}, "colour": {"path": str(colour)}}}}))
    result = run_snakemake(workdir, "monitor", "--configfile", str(pipeline_run[1]), str(monitor))
    assert result.returncode == 0, result.stderr[-4000:]
    steady = json.loads((workdir / "results/monitor/same/drift.json").read_text())
    assert steady["n_images"] == 120 and steady["n_labelled"] == 0
    assert steady["recommendation"]["action"] == "no action", steady["drifting"]
    shifted = json.loads((workdir / "results/monitor/bright/drift.json").read_text())
    assert "images" in shifted["drifting"] and shifted["recommendation"]["action"] != "no action"
    assert shifted["signals"]["images"]["tests"]["brightness"]["batch_median"] > \
        shifted["signals"]["images"]["tests"]["brightness"]["reference_median"]
    assert shifted["signals"]["performance"]["n"] == 100 and shifted["outliers"]["share"] > 0.5
    for name in ("drift.md", "drift.png", "images.csv"):
        assert (workdir / "results/monitor/bright" / name).stat().st_size > 0
    other = json.loads((workdir / "results/monitor/colour/drift.json").read_text())
    assert {f["code"] for f in other["findings"]} == {"new_image_mode", "new_image_size"}
    assert other["signals"]["images"]["tests"]["mode"]["batch_share"] == {"L": 0.0, "RGB": 1.0}
    assert "images" in other["drifting"] and other["n_images"] == 40
    assert "batch bright (100 images): drift in" in result.stderr
    html = (workdir / "results/report/report.html").read_text()
    assert "Batch same: 120 images" in html and "Batch bright: 100 images (100 labelled)" in html
    # A batch that changed is monitored again; the others are not.
    (same / "000.png").unlink()
    result = run_snakemake(workdir, *(f"results/monitor/{name}/drift.json" for name in ("same", "bright", "colour")),
                           "--configfile", str(pipeline_run[1]), str(monitor))
    assert result.returncode == 0 and jobs_run(result.stderr) == {"monitor_batch"}
    assert json.loads((workdir / "results/monitor/same/drift.json").read_text())["n_images"] == 119


def test_bad_batches_are_refused_as_in_data_validation(pipeline_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    rows = [line.split(",") for line in (workdir / "results/splits/fold_1/val.csv").read_text().splitlines()[1:]]
    broken = digit_batch(workdir, tmp_path / "broken", [r[0] for r in rows[:5]], None)
    write_bad_file(broken / "scan.jpg", "truncated.jpg")
    (tmp_path / "empty").mkdir()
    names = ("broken", "empty", "missing")
    monitor = workdir / "monitor.yaml"
    monitor.write_text(yaml.safe_dump({"monitor": {"batches": {name: {"path": str(tmp_path / name)}
                                                               for name in names}}}))
    result = run_snakemake(workdir, "--keep-going", *(f"results/monitor/{name}/drift.json" for name in names),
                           "--configfile", str(pipeline_run[1]), str(monitor))
    assert result.returncode != 0
    for message in ("batch 'broken'", "scan.jpg", "truncated", "monitor.on_bad_file: drop",
                    "batch 'empty'", "holds no image", "batch 'missing'", "does not exist",
                    "monitor.batches.missing.path"):
        assert message in result.stderr, (message, result.stderr[-3000:])
    for name in names:
        assert not (workdir / f"results/monitor/{name}/drift.json").exists()
    # Dropping bad files monitors the rest, and says what was left out.
    monitor.write_text(yaml.safe_dump({"monitor": {"on_bad_file": "drop",
                                                   "batches": {"broken": {"path": str(broken)}}}}))
    result = run_snakemake(workdir, "results/monitor/broken/drift.json", "--configfile", str(pipeline_run[1]),
                           str(monitor))
    assert result.returncode == 0, result.stderr[-3000:]
    assert jobs_run(result.stderr) == {"monitor_batch"}  # monitoring settings never touch the trained models
    report = json.loads((workdir / "results/monitor/broken/drift.json").read_text())
    assert report["n_images"] == 5 and report["dropped"][0]["path"] == "scan.jpg"
    # No batch configured: the monitor target says how to name one.
    result = run_snakemake(workdir, "monitor", "--configfile", str(pipeline_run[1]))
    assert result.returncode != 0 and "make monitor BATCH=" in result.stderr
