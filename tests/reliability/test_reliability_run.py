"""Reliability corpus, run time: results that must not depend on the machine, an honest seal, a
verify that reads the run it checks (see test_reliability_load.py for the load-time cases, and
tests/final for the seal's unit tests)."""

import json
import logging

import pytest

from imgclf.core.config import validate_config
from imgclf.core.errors import ConfigError, ImgclfError


def test_the_default_batch_size_is_fixed_so_results_do_not_depend_on_timing():
    assert validate_config({})["train"]["batch_size"] == 32


def test_a_kept_probe_pick_is_reused_instead_of_measured_again():
    """The probe measures once: a kept record probed for the same settings is returned as it is,
    without timing anything (TensorFlow is not even configured)."""
    import pandas as pd

    from imgclf.explore.probe import kept_pick_mismatch, probe_settings

    config = validate_config({"train": {"batch_size": "auto"}})
    index = pd.DataFrame({"path": ["a.png", "b.png"], "label": ["a", "b"], "mode": ["L", "L"]})
    wanted = probe_settings(config, index, 2)
    kept = {"chosen": 64, "probed_for": json.loads(json.dumps(wanted)), "device": "CPU (x)", "probed_at": "then"}
    assert kept_pick_mismatch(kept, wanted) is None
    assert "model" in kept_pick_mismatch({**kept, "probed_for": {**wanted, "model": {}}}, wanted)
    assert kept_pick_mismatch({"chosen": 8}, wanted) == "it records no settings"


def test_the_kept_pick_job_path(tmp_path):
    import pandas as pd

    from imgclf.core.io import write_csv
    from imgclf.explore.probe import probe_settings
    from imgclf.explore.tf_jobs import probe_batch_size

    index = pd.DataFrame({"path": ["a.png", "b.png"], "sha256": ["1", "2"], "label": ["a", "b"],
                          "mode": ["L", "L"]})
    write_csv(tmp_path / "index.csv", index)
    write_csv(tmp_path / "train.csv", index)
    config = validate_config({"train": {"batch_size": "auto"}})
    from imgclf.core.io import read_index
    from imgclf.core.job import JobResources

    wanted = json.loads(json.dumps(probe_settings(config, read_index(tmp_path / "index.csv"), 2)))
    kept = {"chosen": 64, "probed_for": wanted, "device": "CPU (x)", "probed_at": "then"}
    record = tmp_path / "batch_size.json"
    record.write_text(json.dumps(kept))
    result = probe_batch_size(config, tmp_path / "index.csv", tmp_path / "train.csv", JobResources(1),
                              tmp_path / "emissions.csv", record, logging.getLogger("test"))
    assert result["record"] == kept
    assert result["batch_size"]["chosen"] == 64 and result["batch_size"]["reused_from"] == str(record)
    assert not (tmp_path / "emissions.csv").exists()  # nothing was measured
    record.write_text("{not json")
    with pytest.raises(ImgclfError, match="batch_size.json \\(batch_probe.record\\) is not the probe's JSON record"):
        probe_batch_size(config, tmp_path / "index.csv", tmp_path / "train.csv", JobResources(1),
                         tmp_path / "emissions.csv", record, logging.getLogger("test"))


def test_verify_reads_the_config_the_run_was_made_with(tmp_path):
    from imgclf.verify import run_config

    record = tmp_path / "results/report/reproducibility.json"
    with pytest.raises(ImgclfError, match="reproducibility.json is absent"):
        run_config(tmp_path, None)
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"config": validate_config({"seed": 7, "final": {"n_seeds": 2}})}))
    config, source = run_config(tmp_path, None)
    assert config["seed"] == 7 and "the config as run" in source
    other = tmp_path / "other.yaml"
    other.write_text("seed: 9\n")
    assert run_config(tmp_path, other)[0]["seed"] == 9


def test_a_weight_difference_is_explained_by_what_the_record_supports():
    from imgclf.core.environment import cpu_model, package_versions
    from imgclf.verify import retrain_difference_causes

    installed = package_versions()
    here = {"tensorflow": installed.get("tensorflow") or installed.get("tensorflow-cpu"),
            "keras": installed["keras"], "numpy": installed["numpy"], "cpu": cpu_model(), "gpus": [],
            "intra_op_threads": 1}
    assert retrain_difference_causes({"runtime": here, "resumed": None}) == [
        "unknown: the record shows the same packages, CPU and thread count, and no resume"]
    causes = retrain_difference_causes({"runtime": here, "resumed": {"from_epoch": 3}})
    assert len(causes) == 1 and "resumed after an interruption (from_epoch 3)" in causes[0]
    older = retrain_difference_causes({"runtime": {**here, "tensorflow": "2.0.0"}})
    assert older == [f"tensorflow 2.0.0 trained it, {here['tensorflow']} here"]


def test_the_smallest_input_the_config_accepts_is_the_smallest_the_network_builds():
    """The load-time bound on data.image_size (each small_cnn block halves the image) agrees with
    Keras: accepted sizes train a step, the first refused one fails in the model."""
    import numpy as np

    from imgclf.core.config import check_model_config
    from imgclf.core import runtime

    runtime.configure(0, 1)
    from imgclf.training.models import build_model

    filters = [4, 4, 4]
    for size, accepted in ((8, True), (7, False)):
        config = validate_config({"data": {"image_size": [size, size]}, "model": {"small_cnn": {"filters": filters}}})
        if accepted:
            check_model_config(config)
            model = build_model(config["model"], 2, (size, size, 1))
            assert model.predict(np.zeros((1, size, size, 1), np.float32), verbose=0).shape == (1, 2)
        else:
            with pytest.raises(ConfigError, match=r"at least 8x8 pixels"):
                check_model_config(config)
            with pytest.raises(Exception):
                build_model(config["model"], 2, (size, size, 1)).predict(np.zeros((1, size, size, 1), np.float32),
                                                                         verbose=0)


@pytest.mark.workflow
def test_the_default_study_gives_the_same_answer_trials_and_metrics_under_cpu_load(tmp_path):
    """Two runs of one study, one on a quiet machine and one with both cores kept busy: the same
    answer, the same points' histories, byte for byte (nothing is decided from timing)."""
    import subprocess
    import sys

    from conftest import run_snakemake, write_config

    study = {"data": {"source": "digits", "digits": {"size": 16}, "image_size": [16, 16]},
             "split": {"n_folds": 2}, "train": {"epochs": 2, "tensorboard_histogram_freq": 0},
             "explore": {"studies": [{"name": "opt", "question": "Which optimizer?",
                                      "scientific": {"train.optimizer": ["adam", "sgd"]},
                                      "nuisance": {"train.learning_rate": [0.01]}}]}}
    runs = []
    for name, busy in (("quiet", 0), ("loaded", 2)):
        workdir = tmp_path / name
        workdir.mkdir()
        config = write_config(workdir, study)
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            result = run_snakemake(workdir, "results/explore/opt/summary.json", "--configfile", str(config))
        finally:
            for burner in burners:
                burner.kill()
        assert result.returncode == 0, result.stderr[-3000:]
        assert "probe_batch_size" not in result.stderr  # a fixed batch size: nothing is timed
        runs.append(workdir / "results/explore/opt")
    quiet, loaded = runs
    a, b = (json.loads((r / "summary.json").read_text()) for r in runs)
    assert a["winner"] == b["winner"] and a["answer"] == b["answer"]
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(a["rows"]) == strip(b["rows"])
    for point in ("p00", "p01"):
        assert (quiet / point / "history.csv").read_bytes() == (loaded / point / "history.csv").read_bytes()


@pytest.mark.workflow
def test_a_config_that_names_only_its_data_folder_runs_to_the_test_evaluation(tmp_path):
    """The own-data path of the README, with nothing but the data named: the schema's defaults
    train (fixed batch size, 5 seeds) and the sealed test set is evaluated; the demo beside it
    (config/config.yaml, its targets on the digit 8) plays no part."""
    import shutil

    from conftest import REPO, jobs_run, make_folder, run_snakemake, write_config

    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    make_folder(tmp_path / "images", {"cat": 15, "dog": 15}, size=16)
    config = write_config(tmp_path, {"data": {"source": "folder", "root": "images"}})
    result = run_snakemake(tmp_path, "results/evaluate/summary.json", "--configfile", str(config), "--config",
                           "train={epochs: 2}", timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "it sets data.root, data.source, train.epochs" in result.stderr
    assert jobs_run(result.stderr) >= {"validate_data", "split_data", "final_train", "evaluate_model"}
    assert not jobs_run(result.stderr) & {"explore_point", "tune_search", "probe_batch_size"}
    summary = json.loads((tmp_path / "results/evaluate/summary.json").read_text())
    assert summary["seeds"] == [42, 43, 44, 45, 46]
    metrics = json.loads((tmp_path / "results/final/seed_42/metrics.json").read_text())
    assert metrics["decisions"]["effective"] == {"batch_size": 32, "batch_size_from": "config",
                                                 "intra_op_threads": 1, "inter_op_threads": 1,
                                                 "initial_weights_sha256": None}
    assert metrics["decisions"]["resumed"] is None
