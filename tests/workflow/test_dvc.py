"""DVC: dvc.yaml generated from the workflow, dvc repro, params, experiments, push/pull and verify.

The project is copied into a temporary git repository with tiny data tracked by
DVC, as a user would set it up; the real Snakefile runs under DVC's stages.
"""

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_folder

pytestmark = pytest.mark.workflow

BIN = Path(sys.executable).parent

TINY = {
    "seed": 42,
    "data": {"source": "folder", "root": "data/images", "image_size": [16, 16], "group_columns": None},
    "validation": {"min_images_per_class": 5},
    "split": {"n_folds": 2, "group_column": None},
    "model": {"architecture": "small_cnn"},
    "batch_probe": {},
    "train": {"batch_size": 8, "epochs": 1, "tensorboard_histogram_freq": 0},
    "explore": {"studies": [{"name": "opt", "question": "Which optimizer?",
                             "scientific": {"train.optimizer": ["adam", "sgd"]},
                             "nuisance": {"train.learning_rate": [0.01]}}]},
    "tune": {"enabled": True, "max_trials": 2, "epochs": 1, "data_fraction": 1.0, "fix_from_study": "opt",
             "search_space": [{"name": "model.dropout", "type": "float", "min": 0.0, "max": 0.5}]},
    "final": {"n_seeds": 2, "folds": "rotate"},
    "evaluation": {"confidence": 0.95, "unseal_reason": None, "ece_bins": 10},
    "targets": [{"metric": "accuracy", "min": 0.2}],
    "audit": {"min_group_size": 5},
    "carbon": {"country_iso_code": "FRA"},
    "report": {},
    "export": {"latency_runs": 10},
}


def environment() -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONHASHSEED="0",
                DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="imgclf test", GIT_AUTHOR_EMAIL="test@imgclf.invalid",
                GIT_COMMITTER_NAME="imgclf test", GIT_COMMITTER_EMAIL="test@imgclf.invalid")


def sh(repo: Path, *command: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(list(command), cwd=repo, capture_output=True, text=True, env=environment(),
                            timeout=timeout)
    if check:
        assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(repo, str(BIN / "dvc"), *args, check=check)


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def write_config(repo: Path, config: dict) -> None:
    (repo / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The project in a fresh git repository, its data added to DVC, after one `dvc repro`."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("dvc") / "project"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file() and not name.startswith(("tests/", "benchmarks/")) and name != "dvc.yaml":
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    make_folder(repo / "data/images", {"a": 16, "b": 16, "c": 16})
    write_config(repo, TINY)
    sh(repo, "git", "init", "-q")  # the project's .dvc/ came with the files, as in a clone
    dvc(repo, "add", "-q", "data/images")
    sh(repo, sys.executable, "-m", "imgclf.dvc_pipeline")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "project, data and pipeline")
    first = dvc(repo, "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results")
    return repo, first.stdout


def test_dvc_yaml_in_the_repository_is_generated_from_the_workflow():
    result = subprocess.run([sys.executable, "-m", "imgclf.dvc_pipeline", "--check"], cwd=REPO,
                            capture_output=True, text=True, env=environment())
    assert result.returncode == 0, result.stderr + "\n(regenerate it: python -m imgclf.dvc_pipeline)"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    # One DVC stage per stage of the registry (the audit runs in two parts: it gates the trainings).
    assert list(stages) == ["data", "split", "audit_data", "audit", "explore", "tune", "final", "evaluate", "carbon",
                            "export", "report"]
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m imgclf.dvc_pipeline --run-stage {name}"
        assert all(next(iter(out.values()))["persist"] for out in stage["outs"])
    assert "imgclf/training/loop.py" in stages["final"]["deps"] and "results/tune" in stages["final"]["deps"]
    assert "imgclf/training/loop.py" not in stages["evaluate"]["deps"]  # evaluation does not train


def test_rules_without_a_stage_and_params_missing_from_the_config_are_errors():
    from imgclf.dvc_pipeline import Job, build_dvc_yaml
    from imgclf.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"rules \['new_rule'\] belong to no stage"):
        build_dvc_yaml([Job("new_rule", [], ["results/x/y.json"])], "seed: 1\n")
    with pytest.raises(ConfigError, match=r"stage split reads \['split'\], which config/config.yaml does not set"):
        build_dvc_yaml([Job("split_data", ["results/data/index.csv"], ["results/split/split.json"])], "seed: 1\n")


def test_dvc_repro_runs_the_whole_pipeline_and_a_second_does_nothing(project):
    repo, first = project
    assert stages_run(first) == ["data", "split", "audit_data", "explore", "tune", "final", "evaluate", "audit",
                                 "carbon", "export", "report"]
    for name in ("results/report/report.html", "results/evaluate/test_metrics.json", "results/evaluate/deployed/model.keras",
                 "results/report/reproducibility.json", "dvc.lock"):
        assert (repo / name).is_file(), name
    started = time.monotonic()
    again = dvc(repo, "repro")
    seconds = time.monotonic() - started
    assert stages_run(again.stdout) == [] and "Data and pipelines are up to date" in again.stdout
    print(f"no-op dvc repro: {seconds:.2f} s")  # the README quotes the benchmark's figure
    metrics = dvc(repo, "metrics", "show", "--json").stdout
    assert "accuracy" in metrics and "targets_met" in metrics
    plots = dvc(repo, "plots", "show", "-o", str(repo.parent / "plots"))
    assert (repo.parent / "plots" / "index.html").is_file(), plots.stdout


def test_an_experiment_with_one_param_changed_reruns_only_the_stages_that_read_it(project):
    repo, _ = project
    run = dvc(repo, "exp", "run", "-S", "config/config.yaml:evaluation.ece_bins=12")
    assert stages_run(run.stdout) == ["evaluate", "audit", "carbon", "export", "report"]
    jobs = {line.split()[1].rstrip(":") for line in (run.stdout + run.stderr).splitlines()
            if line.startswith(("rule ", "localrule "))}
    # The predictions do not change with the calibration bins: their audit is not redone.
    assert "evaluate_model" in jobs and not jobs & {"audit_models", "final_train", "tune_search", "explore_point"}
    targets = [{"metric": "accuracy", "min": 0.25}]
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    write_config(repo, {**config, "targets": targets})
    events = (repo / "results/evaluate/seal/events.jsonl").read_text()
    run = dvc(repo, "repro")
    # The objectives follow the targets, so DVC hands the stages that read them to Snakemake; the
    # resolved objective is unchanged (accuracy), so Snakemake retrains nothing.
    assert "evaluate" in stages_run(run.stdout)
    jobs = {line.split()[1].rstrip(":") for line in (run.stdout + run.stderr).splitlines()
            if line.startswith(("rule ", "localrule "))}
    assert "evaluate_model" not in jobs and "evaluation_summary" in jobs  # a new target: no new test evaluation
    assert not jobs & {"explore_point", "explore_summary", "tune_search", "final_train"}
    assert (repo / "results/evaluate/seal/events.jsonl").read_text() == events
    diff = dvc(repo, "params", "diff").stdout
    assert "evaluation.ece_bins" in diff and "12" in diff
    assert "ece.mean" in dvc(repo, "metrics", "diff").stdout
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "ece bins 12")


def test_modification_times_reset_by_a_checkout_rerun_nothing(project):
    repo, _ = project
    files = [p for p in (repo / "results").rglob("*") if p.is_file()]
    random.Random(0).shuffle(files)
    for path in files:  # as a checkout leaves them: in any order
        path.touch()
    (repo / "data/images").touch()
    dvc(repo, "checkout", "--force", "-q")
    assert stages_run(dvc(repo, "repro").stdout) == []
    dry = sh(repo, str(BIN / "snakemake"), "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr  # plain Snakemake agrees
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    config["report"]["samples_per_class"] = 3
    write_config(repo, config)
    run = dvc(repo, "repro")
    assert stages_run(run.stdout) == ["report"]
    jobs = {line.split()[1].rstrip(":") for line in (run.stdout + run.stderr).splitlines()
            if line.startswith(("rule ", "localrule "))}
    assert jobs == {"report_galleries", "report_html", "reproducibility_record", "report"}  # report: the target
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "3 samples per class")


def test_push_delete_pull_then_verify_finds_everything_matching(project):
    repo, _ = project
    remote = repo.parent / "remote"
    dvc(repo, "remote", "add", "-d", "-f", "local", str(remote))
    dvc(repo, "push", "-q")
    for name in ("results", ".dvc/cache", "data/images", ".snakemake"):  # as in a fresh clone
        shutil.rmtree(repo / name)
    dvc(repo, "pull", "-q")
    assert (repo / "results/evaluate/deployed/model.keras").is_file()
    assert stages_run(dvc(repo, "repro").stdout) == []
    # Snakemake never ran in this folder: planning stops and names the command that adopts the
    # pulled results (instead of retraining every model), and `make restamp` adopts them.
    planned = sh(repo, str(BIN / "snakemake"), "-n", check=False)
    assert planned.returncode != 0 and "make restamp" in planned.stderr, planned.stderr[-2000:]
    sh(repo, str(BIN / "snakemake"), "--touch", "--cores", "1")
    dry = sh(repo, str(BIN / "snakemake"), "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    before = {p: p.stat().st_mtime_ns for p in (repo / "results").rglob("*")}
    verify = sh(repo, sys.executable, "-m", "imgclf.verify", "--retrain", "42", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr[-2000:]
    lines = verify.stdout.splitlines()
    assert lines[0] == "imgclf verify: 9 artifacts checked, all match"
    assert "  MATCH   index: byte-identical (48 rows)" in lines
    assert any(line.startswith("  MATCH   final model seed 42 retrained: weights identical") for line in lines)
    assert any(line.startswith("  MATCH   final model seed 43 on the test set: all") for line in lines)
    assert {p: p.stat().st_mtime_ns for p in (repo / "results").rglob("*")} == before  # nothing written there


def test_verify_names_a_changed_image(project):
    repo, _ = project
    from PIL import Image

    path = repo / "data/images/b/b_003.png"
    image = Image.open(path).convert("RGB")
    image.putpixel((0, 0), (1, 2, 3))
    image.save(path)
    verify = sh(repo, sys.executable, "-m", "imgclf.verify", check=False)
    assert verify.returncode == 1
    assert "DIFFER  index: image 'b/b_003.png' changed: sha256" in verify.stdout
    assert "do NOT match" in verify.stdout.splitlines()[0]
