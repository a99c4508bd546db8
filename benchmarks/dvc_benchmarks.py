"""DVC benchmark (issue 6): `dvc repro` of the default pipeline in a fresh git repository,
then the cost of a `dvc repro` that has nothing to do (target: under 5 s) and of `dvc status`.

Run: make benchmark-dvc   (or: python benchmarks/dvc_benchmarks.py [--repeats 5])

The project's tracked files are copied into a new git repository under
benchmarks/results/dvc/ (as a user's clone), dvc.yaml is regenerated there, and
the whole default pipeline (config/config.yaml, the embedded digits) runs under
`dvc repro`. Figures are printed and written to benchmarks/results/dvc_benchmarks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent


def run(repo: Path, *command: str) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@imgclf.invalid", GIT_COMMITTER_NAME="bench",
               GIT_COMMITTER_EMAIL="bench@imgclf.invalid")
    started = time.monotonic()
    result = subprocess.run(list(command), cwd=repo, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="no-op repros timed (default: %(default)s)")
    args = parser.parse_args()
    repo = OUT / "dvc" / "project"
    if repo.exists():
        shutil.rmtree(repo)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file() and name != "dvc.yaml":
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    run(repo, "git", "init", "-q")  # the project's .dvc/ came with the files, as in a clone
    run(repo, sys.executable, "-m", "imgclf.dvc_pipeline")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "project")
    print("dvc repro of the default pipeline (a few minutes)...", flush=True)
    full, result = run(repo, str(BIN / "dvc"), "repro")
    stages = [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")]
    noop = []
    for _ in range(args.repeats):
        seconds, result = run(repo, str(BIN / "dvc"), "repro")
        assert "Data and pipelines are up to date" in result.stdout, result.stdout[-2000:]
        noop.append(seconds)
    status = [run(repo, str(BIN / "dvc"), "status")[0] for _ in range(args.repeats)]
    cache = sum(p.stat().st_size for p in (repo / ".dvc" / "cache").rglob("*") if p.is_file())
    figures = {"full_repro_seconds": round(full, 1), "stages_run": stages,
               "noop_repro_seconds": [round(s, 2) for s in noop],
               "noop_repro_median_seconds": round(statistics.median(noop), 2),
               "status_median_seconds": round(statistics.median(status), 2),
               "cache_mb": round(cache / 1e6, 1), "target_noop_seconds": 5.0}
    print(f"full dvc repro (default pipeline, {len(stages)} stages): {full:.1f} s")
    print(f"no-op dvc repro, {args.repeats} runs: median {figures['noop_repro_median_seconds']} s "
          f"(runs {figures['noop_repro_seconds']}; target < 5 s)")
    print(f"dvc status: median {figures['status_median_seconds']} s; DVC cache {figures['cache_mb']} MB")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dvc_benchmarks.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
