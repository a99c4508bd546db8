"""The data stage through the real Snakefile: the default digits, bad data, reruns."""

import shutil

from conftest import jobs_run, make_folder, run_snakemake, SPLIT_FILES, UNTIL_SPLIT, write_bad_file, write_config

import pytest

pytestmark = pytest.mark.workflow


def test_default_data_produces_index_report_and_manifests(digits_run):
    workdir = digits_run[0]
    index = (workdir / "results/data/index.csv").read_text().splitlines()
    assert index[0].startswith("path,sha256,label,width,height,mode,format")
    assert len(index) == 1 + 1797
    assert (workdir / "results/data/validation.md").read_text().startswith("# Data validation")
    for name in SPLIT_FILES:
        assert (workdir / "results/split" / name).is_file(), name
    test_rows = (workdir / "results/split/test.csv").read_text().splitlines()
    assert test_rows[0] == "path,sha256,label,group" and 350 <= len(test_rows) - 1 <= 370
    assert (workdir / "logs/data/validate_data.log").read_text()
    assert (workdir / "logs/data/validate_data.benchmark.tsv").is_file()


def test_bad_data_fails_the_workflow_naming_the_files_and_writes_no_outputs(tmp_path):
    root = make_folder(tmp_path / "images", {"cat": 12, "dog": 12})
    write_bad_file(root / "dog" / "broken.jpg", "truncated.jpg")
    config = write_config(tmp_path, {"data": {"source": "folder", "root": str(root)}})
    result = run_snakemake(tmp_path, "--configfile", str(config))
    assert result.returncode != 0
    assert "dog/broken.jpg" in result.stderr and "truncated" in result.stderr
    assert not (tmp_path / "results" / "data" / "index.csv").exists()
    assert not (tmp_path / "results" / "split").exists()
    log = (tmp_path / "logs/data/validate_data.log").read_text()
    assert "No index was written" in log
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
