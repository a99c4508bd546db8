"""The import graph: the core uses no stage, the training layer only the core, a stage uses another
stage only through the names that stage's package declares as its interface, and every script is
thin: it unpacks its rule's inputs and params, calls one function of its stage, writes what it
returns."""

import ast
from pathlib import Path

import pytest

from imgclf.core.lazy import read_interface
from imgclf.pipeline import stage_names

REPO = Path(__file__).resolve().parents[2]
STAGES = set(stage_names())
#: The most lines a script under scripts/ may have.
MAX_SCRIPT_LINES = 25


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every import of imgclf in a file, function bodies included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("imgclf"):
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.startswith("imgclf")]
    return found


def interface(stage: str) -> set[str]:
    return set(read_interface(REPO / "imgclf" / stage / "__init__.py"))


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "imgclf" else None


def crossings(package: str) -> list[str]:
    """What a package's modules import across the allowed boundaries."""
    allowed = {"core": {"core"}, "training": {"core", "training"}}.get(package)
    bad = []
    for path in sorted((REPO / "imgclf" / package).glob("*.py")):
        for module, names, line in imports_of(path):
            target = layer(module)
            where = f"{path.relative_to(REPO)}:{line}: {module}"
            if allowed is not None:
                if target not in allowed:
                    bad.append(f"{where} ({package} may import only {', '.join(sorted(allowed))})")
            elif target in STAGES and target != package:
                if module != f"imgclf.{target}":
                    bad.append(f"{where} (a stage's internals: import from imgclf.{target})")
                elif not set(names) <= interface(target):
                    bad.append(f"{where} {sorted(set(names) - interface(target))} (not in its interface)")
            elif target not in STAGES | {"core", "training", None}:
                bad.append(f"{where} (a stage imports no tool module)")
    return bad


@pytest.mark.parametrize("package", ["core", "training", *sorted(STAGES)])
def test_packages_cross_no_boundary(package):
    assert crossings(package) == []


def test_the_check_catches_a_stage_reaching_into_another(tmp_path, monkeypatch):
    fake = tmp_path / "imgclf" / "split"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("from imgclf.data.sources import list_manifest\nfrom imgclf.evaluate import secret\n")
    for stage in ("data", "evaluate"):
        (tmp_path / "imgclf" / stage).mkdir()
        (tmp_path / "imgclf" / stage / "__init__.py").write_text(
            (REPO / "imgclf" / stage / "__init__.py").read_text())
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    found = crossings("split")
    assert len(found) == 2 and "internals" in found[0] and "not in its interface" in found[1]


def test_tools_use_stages_through_their_interfaces():
    for name in ("verify.py", "retrain.py", "dvc_pipeline.py", "pipeline.py", "layout.py"):
        for module, names, line in imports_of(REPO / "imgclf" / name):
            target = layer(module)
            if target in STAGES:
                assert module == f"imgclf.{target}" and set(names) <= interface(target), (name, line, module)


SCRIPTS = sorted((REPO / "scripts").rglob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(REPO / "scripts").as_posix())
def test_scripts_are_thin_and_call_one_function_of_their_stage(script):
    stage, rule = script.parent.name, script.stem
    lines = script.read_text().splitlines()
    assert len(lines) <= MAX_SCRIPT_LINES, f"{len(lines)} lines"
    calls = [(module, names) for module, names, _ in imports_of(script) if module != "imgclf.core.job"]
    stage_calls = [names for module, names in calls if module == f"imgclf.{stage}"]
    assert len(stage_calls) == 1 and len(stage_calls[0]) == 1, calls
    assert stage_calls[0][0] in interface(stage)
    # Besides the stage's function: only the training layer's file records (unpacking the rule's names).
    assert {module for module, _ in calls} <= {f"imgclf.{stage}", "imgclf.training.files"}, calls
    text = "\n".join(lines)
    assert "write_outputs(sm.output" in text or rule == "export_digits", "the function's result is written"
    assert "def " not in text and "open(" not in text
