"""The weights stage through the real Snakefile: fetched before any training, offline failures early."""

import json
import socket

import pytest

from conftest import job_inputs, jobs_run, run_snakemake, write_config

pytestmark = pytest.mark.workflow

LITE0 = {
    "data": {"source": "digits", "digits": {"size": 32}, "image_size": [32, 32], "channels": 3},
    "split": {"n_folds": 2},
    "model": {"architecture": "efficientnet_lite0", "weights": "imagenet", "dense_units": 16},
    "train": {"batch_size": 32, "epochs": 2, "tensorboard_histogram_freq": 0,
              "fine_tune": {"enabled": True, "unfreeze_layers": 10, "epochs": 1, "learning_rate": 0.0001}},
    "explore": {"studies": []},
    "tune": {"enabled": False},
    "final": {"n_seeds": 1},
    "targets": [{"metric": "accuracy", "min": 0.1}],
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_pretrained_run_fetches_its_weights_once_before_training(tmp_path):
    cache = tmp_path / "cache"
    config = write_config(tmp_path, {**LITE0, "model": {**LITE0["model"], "weights_cache": str(cache)}})
    planned = run_snakemake(tmp_path, "results/evaluate/summary.json", "--dry-run", "--configfile", str(config))
    assert planned.returncode == 0, planned.stderr[-3000:]
    inputs = dict(job_inputs(planned.stdout + planned.stderr))
    assert "results/weights/weights.json" in inputs["final_train"]
    result = run_snakemake(tmp_path, "results/evaluate/summary.json", "--configfile", str(config), timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert {"fetch_weights", "final_train", "evaluate_model"} <= jobs_run(result.stderr)
    record = json.loads((tmp_path / "results" / "weights" / "weights.json").read_text())
    [entry] = record["files"]
    assert entry["architecture"] == "efficientnet_lite0" and entry["path"].startswith(str(cache))
    assert json.loads((tmp_path / "results" / "evaluate" / "summary.json").read_text())


def test_offline_without_the_file_the_weights_job_fails_first_and_says_where_to_put_it(tmp_path):
    mirror = f"http://127.0.0.1:{closed_port()}"
    config = write_config(tmp_path, {**LITE0, "model": {"architecture": "mobilenet_v3_small", "weights": "imagenet",
                                                        "weights_cache": str(tmp_path / "cache"),
                                                        "weights_mirror": mirror}})
    result = run_snakemake(tmp_path, "weights", "--configfile", str(config))
    assert result.returncode != 0
    log = (tmp_path / "logs" / "weights" / "fetch_weights.log").read_text()
    assert f"{mirror}/weights_mobilenet_v3_small" in log and "put it at" in log
    assert str(tmp_path / "cache" / "weights_mobilenet_v3_small") in log
