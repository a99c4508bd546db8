"""The workflow on a real SLURM cluster: `snakemake --profile slurm`, and faults.

A single-node cluster (Debian's slurmctld, slurmd and munge, two fake GPUs) is
started on ports of its own (tests/workflow/slurm_cluster.py). The project's shipped
profile is installed as the user's `slurm` profile (`make slurm-profile`), with the
settings this test cluster needs added as a site would (no accounting database:
squeue for the status; small memory requests for this small machine). Every
Snakemake call runs under `timeout -s KILL`: on SIGTERM Snakemake waits for its
jobs forever (measured on this project's machines: docs/final.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_folder
from slurm_cluster import SlurmCluster, missing_programs

pytestmark = pytest.mark.workflow

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

#: This small machine's site settings, added to the shipped profile.
SITE = {
    "slurm-status-command": "squeue",  # no slurmdbd here: sacct has nothing to ask
    "slurm-init-seconds-before-status-checks": 2,
    "slurm-no-account": True,
    "latency-wait": 5,
    # A 2-CPU machine (the shipped profile asks for 4 to 8 CPUs per training job); the final
    # trainings get 3 of the node's 4 slots: 2 for the input pipeline beside 1 intra-op thread.
    "set-threads": {**{rule: 2 for rule in ("validate_data", "probe_batch_size", "explore_point", "tune_search",
                                            "evaluate_model")}, "final_train": 3},
    "set-resources": {rule: {"mem_mb": 1500} for rule in (
        "validate_data", "probe_batch_size", "explore_point", "tune_search", "final_train", "evaluate_model")},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = missing_programs()
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): .ci/run installs Debian's slurmctld, "
                    "slurmd, munge and slurm-client; elsewhere apt-get install them")
    if os.geteuid() != 0:
        pytest.skip("the test SLURM cluster runs its daemons as root, and this test is not root")
    base = tmp_path_factory.mktemp("slurm")
    # Four CPU slots on a 2-core machine: the time-limit test's job waits beside the others.
    cluster = SlurmCluster(base / "cluster", cpus=4, gpus=2)
    cluster.start()
    config_home = base / "config"
    make = subprocess.run(["make", "-s", "-C", str(REPO), "slurm-profile", f"XDG_CONFIG_HOME={config_home}"],
                          capture_output=True, text=True)
    assert make.returncode == 0 and "installed" in make.stdout, make.stdout + make.stderr
    profile = config_home / "snakemake/slurm/config.yaml"
    settings = yaml.safe_load(profile.read_text())
    assert settings["executor"] == "slurm" and settings["retries"] == 1
    profile.write_text(profile.read_text() + "\n# This test cluster:\n" + yaml.safe_dump(SITE))
    cluster.config_home = config_home
    yield cluster
    cluster.stop()


def project(root: Path, config: dict, images: dict[str, int] | None = None, size: int = 32) -> Path:
    """A working folder with tiny images and a config."""
    root.mkdir(parents=True)
    make_folder(root / "images", images or {"a": 16, "b": 16, "c": 16}, size=size)
    base = {"data": {"source": "folder", "root": str(root / "images"), "image_size": [size, size]},
            "validation": {"min_images_per_class": 5}, "split": {"n_folds": 2},
            "train": {"batch_size": 8, "epochs": 1, "tensorboard_histogram_freq": 0},
            "explore": {"studies": []}, "tune": {"enabled": False}, "final": {"n_seeds": 1},
            "carbon": {"country_iso_code": "FRA"}, "targets": []}
    for key, value in config.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) and key in base else value
    (root / "config.yaml").write_text(yaml.safe_dump(base))
    return root


def slurm_command(workdir: Path, *args: str, timeout: int = 600) -> list[str]:
    # Typed as users type it: `snakemake --profile slurm`, from the working folder.
    return ["timeout", "-s", "KILL", str(timeout), SNAKEMAKE, "--profile", "slurm", *args, "--snakefile",
            str(REPO / "Snakefile"), "--configfile", str(workdir / "config.yaml")]


def slurm_env(cluster: SlurmCluster) -> dict[str, str]:
    env = cluster.env()
    return dict(env, XDG_CONFIG_HOME=str(cluster.config_home), PYTHONHASHSEED="0",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")


def run_slurm(cluster, workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(slurm_command(workdir, *args, timeout=timeout), cwd=workdir, capture_output=True,
                          text=True, env=slurm_env(cluster))


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.2)
    output = process.communicate()[1][-3000:] if process is not None and process.poll() is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{output}")


def kill_script(workdir: Path, script: str) -> int:
    """SIGKILL a job's script (and its children): a node dying under it, as far as the job can tell."""
    killed = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in command and script in command:
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def test_the_workflow_runs_end_to_end_with_snakemake_profile_slurm(cluster, tmp_path):
    workdir = project(tmp_path / "run", {
        "explore": {"studies": [{"name": "opt", "question": "Which optimizer?",
                                 "scientific": {"train.optimizer": ["adam", "sgd"]},
                                 "nuisance": {"train.learning_rate": [0.01]}}]},
        "tune": {"enabled": True, "max_trials": 2, "epochs": 1, "data_fraction": 1.0, "fix_from_study": "opt",
                 "search_space": [{"name": "model.dropout", "type": "float", "min": 0.0, "max": 0.5}]},
        "final": {"n_seeds": 2, "folds": "rotate"}, "audit": {"min_group_size": 5},
        "targets": [{"metric": "accuracy", "min": 0.1}]})
    result = run_slurm(cluster, workdir, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    log = result.stderr
    assert (workdir / "results/report/report.html").is_file()
    # The cluster ran the heavy jobs (this run's: its jobs bear its run ID); light ones ran where Snakemake runs.
    run_id = log.split("SLURM run ID: ", 1)[1].split()[0]
    jobs = [job for job in cluster.jobs() if job["name"] == run_id]
    # validate_data, 2 exploration points, tuning, 2 final trainings, 2 evaluations, the saliency maps
    # of the deployed model, the TFLite export: each once, each completed.
    ran = sorted(job["comment"].split("_wildcards")[0] for job in jobs)
    assert ran == sorted(["rule_validate_data", "rule_explore_point", "rule_explore_point", "rule_tune_search",
                          "rule_final_train", "rule_final_train", "rule_evaluate_model", "rule_evaluate_model",
                          "rule_saliency_maps", "rule_export_model"]), jobs
    assert {job["state"] for job in jobs} == {"COMPLETED"}, jobs
    gpus = {job["comment"].split("_wildcards")[0]: job["tres_per_job"] for job in jobs}
    assert "gpu" in gpus["rule_final_train"] and "gpu" in gpus["rule_explore_point"], gpus
    assert "gpu" not in gpus["rule_evaluate_model"] and "gpu" not in gpus["rule_validate_data"], gpus
    submitted = {line.split()[1] for line in log.splitlines() if line.startswith("rule ")}
    local = {line.split()[1] for line in log.splitlines() if line.startswith("localrule ")}
    assert {"validate_data:", "explore_point:", "tune_search:", "final_train:", "evaluate_model:"} <= submitted
    assert {"split_data:", "evaluation_summary:", "report_html:"} <= local
    # Each training job saw the one GPU that SLURM gave it, got the 3 CPUs the profile asked for (as
    # many as the machine has, as Snakemake caps them: 2 in CI), fed its input pipeline on those
    # left after the config's one intra-op thread, which computed (the laptop's numbers).
    for seed in (42, 43):
        runtime = json.loads((workdir / f"results/final/seed_{seed}/metrics.json").read_text())["runtime"]
        assert runtime["cuda_visible_devices"] in ("0", "1"), runtime
        cpus = min(3, os.cpu_count())
        assert runtime["intra_op_threads"] == 1 and runtime["cpus"] == cpus, runtime
        assert runtime["input_threads"] == max(1, cpus - 1), runtime
    assert json.loads((workdir / "results/evaluate/summary.json").read_text())["seeds"] == [42, 43]


def run_locally(workdir: Path, *targets: str) -> None:
    """Upstream jobs where the test runs (no profile): the fault tests need only their inputs."""
    result = subprocess.run([SNAKEMAKE, *targets, "--cores", "2", "--snakefile", str(REPO / "Snakefile"),
                             "--configfile", str(workdir / "config.yaml")], cwd=workdir, capture_output=True,
                            text=True, env=dict(os.environ, PYTHONHASHSEED="0"))
    assert result.returncode == 0, result.stderr[-3000:]


def test_killed_tuning_and_training_jobs_are_retried_and_resume(cluster, tmp_path, over_time_limit):
    """SIGKILL the tuning job after its first trial, then the final training after 3 epochs:
    SLURM reports each failure, the profile's retry reruns it, and each resumes. (The time-limit
    test's job starts now, in the background.)"""
    workdir = project(tmp_path / "kill", {
        "tune": {"enabled": True, "max_trials": 3, "epochs": 2, "data_fraction": 1.0,
                 "search_space": [{"name": "model.dropout", "type": "float", "min": 0.0, "max": 0.5}]},
        "train": {"epochs": 30, "early_stopping": {"patience": 100}}},
        images={"a": 40, "b": 40, "c": 40})
    run_locally(workdir, "results/split/split.json")
    trials = workdir / "results/tune/keras_tuner/search"
    history = workdir / "results/final/seed_42/history.csv"

    def finished_trials() -> int:
        return sum(json.loads(p.read_text()).get("status") == "COMPLETED"
                   for p in trials.glob("trial_*/trial.json") if p.stat().st_size)

    process = subprocess.Popen(slurm_command(workdir, "results/final/seed_42/metrics.json", timeout=800),
                               cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=slurm_env(cluster))
    try:
        wait_for(lambda: finished_trials() >= 1, 300, "a finished trial", process)
        done_before = finished_trials()
        assert kill_script(workdir, "tune_search.py") + kill_script(workdir, "imgclf.tune.trial") >= 1
        wait_for(lambda: history.is_file() and len(history.read_text().splitlines()) >= 4, 400,
                 "three epochs of the final training", process)
        assert kill_script(workdir, "final_train.py") >= 1
        _, stderr = process.communicate(timeout=800)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-5000:]
    assert stderr.count("failed, SLURM status is") >= 2  # both failures reported by SLURM, then retried
    tune_log = (workdir / "logs/tune/tune_search.log").read_text()  # the second attempt's
    resumed = [line for line in tune_log.splitlines() if "trials already done" in line]
    assert resumed and int(resumed[0].split("search: ")[1].split()[0]) >= done_before >= 1, tune_log[-2000:]
    assert len((workdir / "results/tune/trials.csv").read_text().splitlines()) == 1 + 3
    log = (workdir / "logs/final/seed_42.log").read_text()
    resumed = [line for line in log.splitlines() if "resuming from epoch" in line]
    assert resumed and int(resumed[0].split("resuming from epoch ")[1].split()[0]) >= 3, log[-2000:]
    assert pd.read_csv(history)["epoch"].astype(int).tolist() == list(range(1, 31))  # none redone, none lost


def test_a_job_failing_on_bad_input_fails_the_workflow_with_its_message_in_its_log(cluster, tmp_path):
    from conftest import write_bad_file

    workdir = project(tmp_path / "bad", {})
    write_bad_file(workdir / "images/b/broken.jpg", "truncated.jpg")
    result = run_slurm(cluster, workdir, "results/split/split.json", "--retries", "0")
    assert result.returncode != 0
    assert "Error in rule validate_data" in result.stderr and "SLURM-job" in result.stderr
    log = (workdir / "logs/data/validate_data.log").read_text()
    assert "b/broken.jpg" in log and "truncated" in log, log[-2000:]
    assert not (workdir / "results/data/index.csv").exists()


@pytest.fixture(scope="module")
def over_time_limit(cluster, tmp_path_factory):
    """A final training of 100,000 epochs with a one-minute limit, started in the background by
    the first test that asks for it: SLURM only enforces a limit after a minute or more, and the
    plugin's status checks back off, so its two minutes overlap the other tests."""
    workdir = project(tmp_path_factory.mktemp("slow") / "slow",
                      {"train": {"epochs": 100000, "early_stopping": {"patience": 100000}}})
    run_locally(workdir, "results/split/split.json")
    process = subprocess.Popen(slurm_command(workdir, "results/final/seed_42/metrics.json", "--retries", "0",
                                             "--set-resources", "final_train:runtime=1", "final_train:mem_mb=1500",
                                             timeout=400),
                               cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=slurm_env(cluster))
    yield process
    if process.poll() is None:
        process.kill()


def test_a_job_over_its_time_limit_is_reported_as_such(over_time_limit):
    _, stderr = over_time_limit.communicate(timeout=450)
    assert over_time_limit.returncode != 0
    assert "SLURM status is: 'TIMEOUT'" in stderr, stderr[-4000:]
    assert "Error in rule final_train" in stderr
