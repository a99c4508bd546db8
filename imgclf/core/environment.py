"""The environment a run was made in: package versions, hardware, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: The packages whose versions change results or their reading.
PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "numpy", "pandas", "scikit-learn", "scipy",
            "pillow", "snakemake", "dvc", "codecarbon", "fairlearn", "matplotlib", "tensorboard")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (absent ones left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _gpus() -> list[str]:
    """GPU names from nvidia-smi (empty without an NVIDIA driver)."""
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else []


def hardware() -> dict[str, Any]:
    """CPU model and cores, memory, GPUs, OS and Python."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gb": _memory_gb(), "gpus": _gpus(),
            "os": platform.platform(), "python": platform.python_version(), "machine": platform.machine()}


def git_state(folder: str | Path) -> dict[str, Any]:
    """The commit of the workflow's repository and whether its tracked files differ from it."""
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20,
                                    check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "note": "not a git repository (or git is absent)"}
    # dvc.lock and .dvc files change with every `dvc repro` or `dvc add`: they record results, not code.
    changed = [line for line in (git("status", "--porcelain", "--untracked-files=no") or "").splitlines()
               if not line.rstrip().endswith(("dvc.lock", ".dvc"))]
    return {"commit": commit, "dirty": bool(changed), "changed_files": changed[:20]}
