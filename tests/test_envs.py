"""The conda environments and the requirement files agree with the lock."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def normalise(name: str) -> str:
    """PEP 503 name, without extras; tensorflow-cpu and tensorflow share a version."""
    name = re.sub(r"\[.*\]", "", name)
    name = re.sub(r"[-_.]+", "-", name).lower()
    return "tensorflow" if name == "tensorflow-cpu" else name


def read_pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        assert match, f"not an exact pin: {line!r}"
        pins[normalise(match.group(1))] = match.group(2)
    return pins


LOCK = read_pins((REPO / "requirements" / "lock.txt").read_text().splitlines())
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def test_lock_pins_the_versions_facts_md_names():
    for name, version in {"tensorflow": "2.21.0", "keras": "3.15.1", "keras-tuner": "1.4.8",
                          "snakemake": "9.27.1", "dvc": "3.67.1", "codecarbon": "3.3.2",
                          "tensorboard": "2.21.0", "pandas": "3.1.1", "numpy": "2.4.6"}.items():
        assert LOCK[name] == version
    assert "tensorflow-cpu==" in (REPO / "requirements" / "lock.txt").read_text().replace("_", "-")


def test_direct_requirements_match_the_lock():
    direct = read_pins((REPO / "requirements" / "direct.txt").read_text().splitlines())
    assert {k: LOCK.get(k) for k in direct} == direct


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_conda_env_pins_match_the_lock(path):
    env = yaml.safe_load(path.read_text())
    assert "python=3.11" in env["dependencies"]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_sections, f"{path.name} has no pip section"
    pins = read_pins(pip_sections[0])
    mismatched = {k: (v, LOCK.get(k)) for k, v in pins.items() if LOCK.get(k) != v}
    assert not mismatched, f"{path.name} disagrees with requirements/lock.txt: {mismatched}"


def test_every_rule_names_an_existing_env():
    for smk in (REPO / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env} missing"
