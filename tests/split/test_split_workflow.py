"""The split stage through the real Snakefile: manifests written once, byte for byte."""

import shutil

from conftest import jobs_run, run_snakemake, snapshot, UNTIL_SPLIT

import pytest

pytestmark = pytest.mark.workflow


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
