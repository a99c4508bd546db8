"""The workflow as a whole: lint, config errors before any job."""

from conftest import REPO, run_snakemake, write_config

import pytest

pytestmark = pytest.mark.workflow


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


def test_an_objective_against_the_targets_is_warned_about_and_an_absent_class_stops(tmp_path):
    targets = [{"metric": "recall", "class": "8", "min": 0.9}]
    config = write_config(tmp_path, {"targets": targets, "tune": {"objective": "val_accuracy"}})
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "imgclf: WARNING: tune.objective is val_accuracy, but the first target is judged by val_recall_8" \
        in result.stderr
    config = write_config(tmp_path, {"targets": targets, "tune": {"objective": "val_recall_88"}})
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert result.returncode != 0
    assert "tune.objective: val_recall_88 names class '88', which the data does not have" in result.stderr
