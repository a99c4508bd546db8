"""The stage is the unit: one registry of stages (imgclf.pipeline.STAGES), and every layer that
names a stage agrees with it: rule files, scripts, packages, tests, doc pages, the Snakemake
targets and dvc.yaml. Each test fails when one copy diverges."""

import re
from pathlib import Path

import pytest
import yaml

from imgclf.core.lazy import read_interface
from imgclf.pipeline import STAGES, TARGET_RULES, get_stage, stage_names, stage_of_rule

REPO = Path(__file__).resolve().parents[2]
SHARED = {"common.smk", "stages.smk"}


def rules_in(path: Path) -> list[str]:
    """The rules a rule file defines, in order."""
    return re.findall(r"^(?:local)?rule (\w+):", path.read_text(), flags=re.MULTILINE)


def test_each_stage_has_one_rule_file_holding_exactly_its_rules():
    files = {p.name for p in (REPO / "rules").glob("*.smk")}
    assert files == {f"{name}.smk" for name in stage_names()} | SHARED
    for stage in STAGES:
        assert rules_in(REPO / "rules" / f"{stage.name}.smk") == list(stage.rules), stage.name
    for shared in SHARED:
        assert rules_in(REPO / "rules" / shared) == [], f"{shared} holds helpers and targets, no working rule"


def test_no_rule_is_named_like_a_stage_and_every_rule_has_one_stage():
    owners = stage_of_rule()
    assert len(owners) == sum(len(stage.rules) for stage in STAGES), "a rule listed in two stages"
    assert not set(owners) & set(TARGET_RULES), "a working rule named like a stage's target"


def test_each_rule_runs_its_stages_script_and_each_script_belongs_to_a_rule():
    scripts = {}
    for stage in STAGES:
        text = (REPO / "rules" / f"{stage.name}.smk").read_text()
        for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
            name = re.match(r"\s*(?:local)?rule (\w+):", block)
            script = re.search(r'script:\s*\n\s*"\.\./(scripts/[\w./]+\.py)"', block)
            if name:
                assert script, f"rule {name.group(1)} runs no script"
                assert script.group(1) == f"scripts/{stage.name}/{name.group(1)}.py", name.group(1)
                scripts[script.group(1)] = name.group(1)
    found = {p.relative_to(REPO).as_posix() for p in (REPO / "scripts").rglob("*.py")}
    assert found == set(scripts), found ^ set(scripts)


def test_each_stage_has_its_package_tests_and_doc_page():
    for name in stage_names():
        assert (REPO / "imgclf" / name / "__init__.py").is_file(), name
        assert list((REPO / "tests" / name).glob("test_*.py")), f"tests/{name}/ holds no test"
        assert (REPO / "docs" / f"{name}.md").is_file(), f"docs/{name}.md is missing"
    assert (REPO / "docs" / "practices.md").is_file()


def test_the_targets_file_is_derived_from_the_registry():
    text = (REPO / "rules" / "stages.smk").read_text()
    assert "for stage in STAGES:" in text and "name:" in text and "get_stage_output(stage.name)" in text
    assert not re.search(r"^rule \w+:", text, flags=re.MULTILINE), "a target written by hand"


def test_dvc_yaml_has_one_stage_per_registry_stage_or_part():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    expected = [part.name for stage in STAGES for part in stage.dvc_stages()]
    # monitor and predict only run when the config names batches, weights with ImageNet weights.
    assert [name for name in expected if name in stages] == list(stages)
    assert set(expected) - set(stages) <= {"monitor", "predict", "weights"}
    for name, entry in stages.items():
        assert entry["cmd"] == f"python -m imgclf.dvc_pipeline --run-stage {name}"


def rule_block(stage: str, rule: str) -> str:
    text = (REPO / "rules" / f"{stage}.smk").read_text()
    return next(b for b in re.split(r"\n(?=(?:local)?rule \w+:)", text) if re.match(rf"\s*(?:local)?rule {rule}:", b))


def test_a_stage_split_for_dvc_keeps_all_its_rules_and_parts_have_no_wildcards():
    for stage in STAGES:
        parts = stage.dvc_stages()
        assert [rule for part in parts for rule in part.rules] == list(stage.rules), stage.name
        for part in parts if len(parts) > 1 else ():
            assert set(part.params) <= set(stage.params), part.name
            for rule in part.rules:  # a part's rules are Snakemake's targets by name: no wildcard to fill
                outputs = re.search(r"output:(.*?)\n    \w+:", rule_block(stage.name, rule), flags=re.S).group(1)
                assert "{" not in outputs, rule
    assert [(p.name, p.rules) for p in get_stage("audit").dvc_stages()] == [
        ("audit_data", ("audit_data",)), ("audit", ("audit_models",))]
    with pytest.raises(KeyError, match="stages: data, weights, split"):
        get_stage("deploy")


def test_no_interface_name_shadows_a_module_of_its_package():
    """``from imgclf.export import model_card`` must give the function, not a module of that name."""
    for name in stage_names():
        package = REPO / "imgclf" / name
        interface = read_interface(package / "__init__.py")
        modules = {p.stem for p in package.glob("*.py")}
        assert not set(interface) & modules, (name, set(interface) & modules)
        for exported, module in interface.items():
            assert module in modules, (name, exported, module)
            source = (package / f"{module}.py").read_text()
            assert re.search(rf"^(def|class) {exported}\b|^{exported}\b.*=", source, flags=re.MULTILINE), \
                f"imgclf.{name}.{module} defines no {exported}"
