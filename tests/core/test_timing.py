"""Time per stage, summed from Snakemake's benchmark files under logs/<stage>/."""

from imgclf.core.timing import stage_times, stage_times_table


def test_stage_times_sum_jobs_per_stage_in_pipeline_order(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "explore" / "study").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validate_data.benchmark.tsv").write_text(header + "1.5\t0:00:01\t200\t0\t0\t0\t0\t0\t0\t0\n")
    for point, seconds in (("p00", 10.0), ("p01", 12.5)):
        (tmp_path / "explore" / "study" / f"{point}.benchmark.tsv").write_text(
            header + f"{seconds}\t0:00:10\t700\t0\t0\t0\t0\t0\t0\t0\n")
    (tmp_path / "explore" / "study" / "p00.log").write_text("not a benchmark")
    (tmp_path / "data" / "broken.benchmark.tsv").write_text("")
    rows = stage_times(tmp_path, ["data", "split", "explore"])
    assert [r["stage"] for r in rows] == ["data", "explore"]
    assert rows[1] == {"stage": "explore", "jobs": 2, "seconds": 22.5, "longest_job_seconds": 12.5,
                       "peak_rss_mb": 700}
    assert [r["stage"] for r in stage_times(tmp_path)] == ["data", "explore"]  # no order given: by name
    table = stage_times_table(rows)
    assert "explore" in table and "24.0" in table  # the total
    assert "no benchmark file" in stage_times_table(stage_times(tmp_path / "absent"))
