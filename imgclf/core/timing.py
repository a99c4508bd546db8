"""Time per pipeline stage, from Snakemake's benchmark files.

Every rule that does real work writes ``logs/<stage>/<job>.benchmark.tsv`` (its ``benchmark:``);
a stage's time is the sum over its jobs (parallel jobs overlap, so the longest job is shown too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

#: The suffix of Snakemake's benchmark files, as the rules name them.
BENCHMARK_SUFFIX = ".benchmark.tsv"


def stage_times(directory: str | Path, order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Jobs, summed and longest seconds and peak memory (MB) per stage.

    Args:
        directory: The logs folder (``logs/<stage>/...``).
        order: The stages in pipeline order; others follow alphabetically.
    """
    base = Path(directory)
    stages: dict[str, list[pd.Series]] = {}
    for path in sorted(base.rglob(f"*{BENCHMARK_SUFFIX}")) if base.is_dir() else []:
        stage = path.relative_to(base).parts[0]
        try:
            table = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError):
            continue
        if table.empty or "s" not in table.columns:
            continue
        stages.setdefault(stage, []).append(table.iloc[-1])
    rank = {name: i for i, name in enumerate(order)}
    rows = []
    for stage in sorted(stages, key=lambda s: (rank.get(s, len(rank)), s)):
        jobs = stages[stage]
        seconds = [float(j["s"]) for j in jobs]
        rss = [float(j["max_rss"]) for j in jobs if "max_rss" in j and pd.notna(j["max_rss"])]
        rows.append({"stage": stage, "jobs": len(jobs), "seconds": round(sum(seconds), 1),
                     "longest_job_seconds": round(max(seconds), 1),
                     "peak_rss_mb": round(max(rss), 0) if rss else None})
    return rows


def stage_times_table(rows: list[dict[str, Any]]) -> str:
    """The stage times as a plain-text table for the terminal."""
    if not rows:
        return "imgclf: no benchmark file under logs/ yet"
    lines = ["imgclf: time per stage (last run of each job; parallel jobs overlap)",
             f"  {'stage':<18}{'jobs':>5}{'job s (sum)':>13}{'longest s':>11}{'peak MB':>9}"]
    for row in rows:
        peak = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "-"
        lines.append(f"  {row['stage']:<18}{row['jobs']:>5}{row['seconds']:>13.1f}"
                     f"{row['longest_job_seconds']:>11.1f}{peak:>9}")
    lines.append(f"  {'total':<18}{sum(r['jobs'] for r in rows):>5}{sum(r['seconds'] for r in rows):>13.1f}")
    return "\n".join(lines)
