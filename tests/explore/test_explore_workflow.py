"""The exploration stage through the real Snakefile."""

import json

from conftest import jobs_run, run_snakemake, write_config

import pytest

pytestmark = pytest.mark.workflow


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
    probed = json.loads((tmp_path / "results/explore/batch_size.json").read_text())
    assert probed["chosen"] in (16, 32) and probed["hardware_dependent"] is True
    # The pick is kept (batch_probe.record) and reused, never measured again: a rerun of the probe on
    # a loaded machine cannot pick another size.
    kept = tmp_path / "config" / "batch_size.json"
    assert json.loads(kept.read_text())["chosen"] == probed["chosen"]
    again = run_snakemake(tmp_path, "results/explore/batch_size.json", "--configfile", str(config),
                          "--forcerun", "probe_batch_size", "--allowed-rules", "probe_batch_size")
    assert again.returncode == 0, again.stderr[-3000:]
    reused = json.loads((tmp_path / "results/explore/batch_size.json").read_text())
    assert reused["chosen"] == probed["chosen"] and reused["reused_from"] == "config/batch_size.json"
    assert "reusing batch size" in (tmp_path / "logs/explore/probe_batch_size.log").read_text()


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
