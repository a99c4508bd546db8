"""The conda environments and the requirement files agree with the lock."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


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


#: Import names of third-party modules -> their package names in the lock.
IMPORTS = {"numpy": "numpy", "pandas": "pandas", "scipy": "scipy", "sklearn": "scikit-learn", "PIL": "pillow",
           "matplotlib": "matplotlib", "yaml": "pyyaml", "jsonschema": "jsonschema", "fairlearn": "fairlearn",
           "tensorflow": "tensorflow", "keras": "keras", "keras_tuner": "keras-tuner", "codecarbon": "codecarbon",
           "tensorboard": "tensorboard", "snakemake": "snakemake"}


def third_party_imports(path: Path) -> set[str]:
    import ast
    import sys

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "imgclf"}


def test_every_rule_env_holds_what_its_script_imports():
    """With --sdm conda each rule gets only its env: its script and the imgclf modules it
    imports (functions' imports too) must find their packages there."""
    import re

    from imgclf.dvc_pipeline import imported_modules, rule_scripts

    scripts = rule_scripts(REPO)
    envs = {}
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=(?:local)?rule \w+:)", smk.read_text()):
            name = re.match(r"\s*rule (\w+):", block)
            env = re.search(r'conda:\s*\n\s*"\.\./(envs/[\w.]+\.yaml)"', block)
            if name and env:
                envs[name.group(1)] = env.group(1)
    assert set(scripts) <= set(envs), set(scripts) - set(envs)
    missing = {}
    for rule, script in scripts.items():
        env = yaml.safe_load((REPO / envs[rule]).read_text())
        pins = read_pins(next(d["pip"] for d in env["dependencies"] if isinstance(d, dict)))
        files = [REPO / script, *(REPO / m for m in imported_modules(REPO / script, REPO))]
        needed = {IMPORTS[name] for path in files for name in third_party_imports(path)}
        absent = sorted(normalise(p) for p in needed if normalise(p) not in pins)
        if absent:
            missing[f"{rule} ({envs[rule]})"] = absent
    assert not missing, f"packages a rule imports but its conda env lacks: {missing}"
