"""Reliability corpus, load time: each fault a user or a hostile tester met, kept as a regression
test that asserts the message and that nothing already produced was lost.

Cases (issue "Results a reviewer can trust"): a YAML syntax error, the demo's settings leaking
into a user's config, nested keys on the command line, an input size too small for the network,
pulled results without Snakemake's records, and a class that loses every image in drop mode.
The run-time cases are in test_reliability_run.py; the bad image files in tests/data.
"""

import shutil
import subprocess
import sys

from conftest import REPO, make_folder, run_snakemake, write_bad_file, write_config

import pytest

pytestmark = pytest.mark.workflow


def demo_workdir(tmp_path):
    """A working directory holding the demo's config, as the project folder does."""
    (tmp_path / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    return tmp_path


def test_a_yaml_error_names_the_file_and_line(tmp_path):
    workdir = demo_workdir(tmp_path)
    text = (workdir / "config/config.yaml").read_text()
    (workdir / "config/config.yaml").write_text(text.replace("  image_size: [32, 32]", "  image_size: [32, 32\n"))
    result = run_snakemake(workdir, "-n")
    assert result.returncode != 0
    assert "imgclf: config/config.yaml, line" in result.stderr and "not valid YAML" in result.stderr
    assert not (workdir / "results").exists()
    # A user's file, checked as `make run CONFIG=...` does before Snakemake reads it.
    mine = tmp_path / "mine.yaml"
    mine.write_text("data:\n  source: folder\n\troot: images\n")
    check = subprocess.run([sys.executable, "-m", "imgclf.core.config", str(mine)], capture_output=True, text=True)
    assert check.returncode == 1
    assert f"{mine}, line 3, column 1: not valid YAML" in check.stderr


def test_a_config_naming_only_its_data_starts_from_the_defaults_not_the_demo(tmp_path):
    """The demo's targets (class '8'), study and tuning budget never reach a user's run."""
    workdir = demo_workdir(tmp_path)
    make_folder(workdir / "images", {"cat": 12, "dog": 12})
    config = write_config(workdir, {"data": {"source": "folder", "root": "images"}})
    result = run_snakemake(workdir, "--configfile", str(config), "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "class '8'" not in result.stderr
    assert f"imgclf: config from {config}; it sets data.root, data.source; every other key takes the " \
           "schema's default" in result.stderr
    planned = result.stdout + result.stderr
    assert "final_train" in planned
    for demo_only in ("explore_point", "tune_search", "probe_batch_size"):
        assert demo_only not in planned
    # Without --configfile, the demo is the config.
    demo = run_snakemake(workdir, "-n")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "imgclf: config from config/config.yaml (the demo)" in demo.stderr
    assert "explore_point" in demo.stdout + demo.stderr


def test_nested_keys_can_be_set_on_the_command_line(tmp_path):
    config = write_config(tmp_path, {})
    ok = run_snakemake(tmp_path, "--configfile", str(config), "-n", "--config", "train={epochs: 3, batch_size: 16}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "it sets train.epochs, train.batch_size" in ok.stderr
    # The value reaches the schema as a number (not the string Snakemake passes): its bound applies.
    low = run_snakemake(tmp_path, "--configfile", str(config), "-n", "--config", "train={epochs: 0}")
    assert low.returncode != 0
    assert "key 'train.epochs': 0 is less than the minimum of 1" in low.stderr


def test_an_input_size_too_small_for_the_network_is_a_config_error(tmp_path):
    config = write_config(tmp_path, {"data": {"image_size": [4, 4], "digits": {"size": 8}},
                                     "model": {"small_cnn": {"filters": [8, 16, 32, 64]}}})
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert result.returncode != 0
    assert "data.image_size [4, 4] is too small for model.architecture small_cnn with 4 conv blocks" in result.stderr
    assert "raise data.image_size to at least 16" in result.stderr
    assert not (tmp_path / "results").exists()


def test_pulled_results_without_records_stop_with_the_command_that_adopts_them(tmp_path):
    workdir = demo_workdir(tmp_path)
    index = workdir / "results/data/index.csv"
    index.parent.mkdir(parents=True)
    index.write_text("path,sha256,label\n")
    result = run_snakemake(workdir, "-n")
    assert result.returncode != 0
    assert "results/ holds results that Snakemake has no record of (results/data/index.csv" in result.stderr
    assert "make restamp" in result.stderr
    assert index.read_text() == "path,sha256,label\n"  # nothing touched
    adopted = run_snakemake(workdir, "-n", "--touch")
    assert adopted.returncode == 0, adopted.stderr[-3000:]


def test_a_target_on_a_class_that_lost_every_image_stops_before_any_training(tmp_path):
    root = make_folder(tmp_path / "images", {"cat": 12, "dog": 12, "fox": 0})
    for i in range(3):
        write_bad_file(root / "fox" / f"fox_{i}.png", "empty.png")
    config = write_config(tmp_path, {
        "data": {"source": "folder", "root": str(root)}, "validation": {"on_bad_file": "drop",
                                                                       "min_images_per_class": 5},
        "split": {"n_folds": 2}, "train": {"epochs": 1},
        "targets": [{"metric": "recall", "class": "fox", "min": 0.5}]})
    result = run_snakemake(tmp_path, "--configfile", str(config))
    assert result.returncode != 0
    assert "targets[0]: class 'fox' does not exist in the data (its classes: cat, dog)" in result.stderr
    assert "after validation" in result.stderr
    assert (tmp_path / "results/data/index.csv").is_file()  # validation's work is kept
    report = (tmp_path / "results/data/validation.md").read_text()
    assert "class_emptied" in report and "'fox' (3 bad file(s))" in report
    assert not (tmp_path / "results/final").exists()


def test_results_adopted_by_touch_are_recognised_until_they_change(tmp_path):
    """`snakemake --touch` leaves no job records: the adoption is noted with the first outputs'
    hashes, and results pulled again (other content) are recognised as unrecorded again."""
    from imgclf.pipeline import outputs_without_records, record_adoption

    index = tmp_path / "results/data/index.csv"
    index.parent.mkdir(parents=True)
    index.write_text("path,sha256,label\n")
    assert outputs_without_records(tmp_path) == ["results/data/index.csv"]
    record_adoption(tmp_path)
    assert outputs_without_records(tmp_path) == []
    index.write_text("path,sha256,label\na.png,1,a\n")
    assert outputs_without_records(tmp_path) == ["results/data/index.csv"]
