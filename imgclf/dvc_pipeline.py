"""``dvc.yaml``, generated from the stage registry and the Snakemake workflow: one source of
truth, two drivers.

Why generated, and why its stages call Snakemake: the Snakefile is where the
pipeline is defined (rules, wildcards, per-seed and per-point jobs, a cluster
profile). DVC brings content-addressed versioning, ``dvc repro``,
``dvc exp run``, metrics, plots and remotes. Writing the pipeline twice would
let the two drift; so each DVC stage is a stage of the registry
(:data:`imgclf.pipeline.STAGES`; the audit runs as two, before training and
after the evaluation) and runs its Snakemake target, and this module derives
everything else DVC needs from the workflow itself:

- the jobs, their inputs and outputs, from a dry run of the workflow on the
  config (``snakemake -n --forceall``);
- a stage's **outs**: ``results/<stage>``, the folder its jobs write (or its files,
  where two DVC stages share the folder), kept with ``persist``; it holds the
  records that outlive a rerun too (emissions, the seal of the test set);
- its **deps**: the outputs of other stages its jobs read, external inputs (the
  data folder, a manifest), the scripts its rules run and every ``imgclf``
  module they import;
- its **params**: the config keys its rules read (the registry's ``params``).

Inside a stage, Snakemake runs with ``--rerun-triggers params input code
software-env`` (no ``mtime``: DVC has already decided, from content hashes, that
the stage must run, and checkouts reset modification times) and
``--forcerun`` of the stage's rules. ``python -m imgclf.dvc_pipeline`` rewrites
``dvc.yaml``; ``--check`` fails when it is stale (a test runs it).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imgclf.core.errors import ConfigError
from imgclf.core.lazy import read_interface
from imgclf.pipeline import STAGES, TARGET_RULES, Part, Stage

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DvcStage:
    """One DVC stage: a registry stage, or one part of it (``Stage.dvc_parts``)."""

    part: Part
    stage: Stage

    @property
    def name(self) -> str:
        return self.part.name

    @property
    def rules(self) -> tuple[str, ...]:
        return self.part.rules

    @property
    def target(self) -> list[str]:
        """What Snakemake is asked for: the stage's target, or a part's own rules (which have no
        wildcards: a test checks it)."""
        return [self.stage.name] if self.rules == self.stage.rules else list(self.rules)


def dvc_stages(stages: tuple[Stage, ...] = STAGES) -> list[DvcStage]:
    """Every DVC stage, in pipeline order."""
    return [DvcStage(part, stage) for stage in stages for part in stage.dvc_stages()]


HEADER = """\
# Generated from the Snakemake workflow and config/config.yaml by
#     python -m imgclf.dvc_pipeline        (make dvc-yaml)
# Do not edit: change the rules or the config and regenerate (a test fails when
# this file is stale). Each stage runs one Snakemake target; see docs/dvc.md.
"""


@dataclass
class Job:
    rule: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of a Snakemake dry run's output: rule, input and output files."""
    jobs: list[Job] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and line.rstrip().endswith(":"):
            jobs.append(Job(words[1].rstrip(":")))
        elif jobs and line.startswith("    input:") and not jobs[-1].inputs:
            jobs[-1].inputs = [p.strip() for p in line.split(":", 1)[1].split(",") if p.strip()]
        elif jobs and line.startswith("    output:") and not jobs[-1].outputs:
            jobs[-1].outputs = [p.strip() for p in line.split(":", 1)[1].split(",") if p.strip()]
    return jobs


def dry_run_jobs(workdir: Path, configfile: Path, snakemake: str | None = None) -> list[Job]:
    """Every job of the workflow on ``configfile``, as if nothing existed yet."""
    exe = snakemake or str(Path(sys.executable).with_name("snakemake"))
    result = subprocess.run([exe, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
                             "--configfile", str(configfile), "-n", "--forceall", "--nolock"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigError(f"the workflow's dry run failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}",
                          "fix the config (the message above names the key), then regenerate dvc.yaml")
    return parse_dry_run(result.stdout + result.stderr)


def rule_scripts(repo: Path = REPO) -> dict[str, str]:
    """The script each rule runs, from rules/*.smk (``script: "../scripts/x.py"``)."""
    scripts = {}
    for path in sorted((repo / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=(?:local)?rule \w+:|checkpoint \w+:)", path.read_text(encoding="utf-8")):
            name = re.match(r"\s*(?:rule|checkpoint) (\w+):", block)
            script = re.search(r'script:\s*\n\s*"\.\./(scripts/[\w./]+\.py)"', block)
            if name and script:
                scripts[name.group(1)] = script.group(1)
    return scripts


def imported_modules(path: Path, repo: Path = REPO, seen: set[str] | None = None) -> set[str]:
    """The ``imgclf`` source files a script or module imports, transitively (imports inside
    functions included: they run too; a name taken from a stage's interface leads to the module
    that defines it)."""
    seen = set() if seen is None else seen

    def visit(candidate: Path) -> None:
        relative = candidate.relative_to(repo).as_posix()
        if candidate.is_file() and relative not in seen:
            seen.add(relative)
            imported_modules(candidate, repo, seen)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            init = repo.joinpath(*node.module.split("."), "__init__.py")
            if node.module.startswith("imgclf") and init.is_file():
                interface = read_interface(init)
                for alias in node.names:
                    if alias.name in interface:
                        visit(init.parent / f"{interface[alias.name]}.py")
        for name in names:
            if not name.startswith("imgclf"):
                continue
            parts = name.split(".")
            for candidate in (repo.joinpath(*parts).with_suffix(".py"), repo.joinpath(*parts, "__init__.py")):
                visit(candidate)
            # A package's parents run their __init__ too.
            for i in range(1, len(parts)):
                init = repo.joinpath(*parts[:i], "__init__.py")
                if init.is_file():
                    seen.add(init.relative_to(repo).as_posix())
    return seen


def _key(path: str) -> str:
    """The out a path belongs to: ``results/<folder>``, or the path itself."""
    parts = Path(path).parts
    return "/".join(parts[:2]) if len(parts) > 2 and parts[0] == "results" else path


def _has_key(config: dict[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def build_dvc_yaml(jobs: list[Job], config_text: str, config_path: str = "config/config.yaml",
                   repo: Path = REPO, stages: tuple[Stage, ...] = STAGES) -> dict[str, Any]:
    """The content of ``dvc.yaml`` for these jobs (see the module docstring).

    Raises:
        ConfigError: A rule with no stage, or a param missing from the config file.
    """
    parts = dvc_stages(stages)
    part_of = {rule: part.name for part in parts for rule in part.rules}
    unknown = sorted({j.rule for j in jobs if j.rule not in part_of and j.rule not in TARGET_RULES})
    if unknown:
        raise ConfigError(f"rules {unknown} belong to no stage",
                          "add them to their stage in imgclf.pipeline.STAGES, then regenerate dvc.yaml")
    config = yaml.safe_load(config_text) or {}
    jobs = [j for j in jobs if j.rule in part_of]
    present = {part_of[j.rule] for j in jobs}
    producer = {out: part_of[j.rule] for j in jobs for out in j.outputs}
    # Who writes under each results/<folder>: one DVC stage owns a folder; shared folders are listed
    # file by file.
    claims: dict[str, set[str]] = {}
    for path, owner in producer.items():
        claims.setdefault(_key(path), set()).add(owner)

    def out_of(path: str) -> str:
        key = _key(path)
        return key if len(claims[key]) == 1 else path

    scripts = rule_scripts(repo)
    result: dict[str, Any] = {"stages": {}}
    for part in parts:
        if part.name not in present:
            continue
        stage = part.stage
        mine = [j for j in jobs if part_of[j.rule] == part.name]
        outs = sorted({out_of(p) for j in mine for p in j.outputs})
        deps: set[str] = set()
        for job in mine:
            for path in job.inputs:
                owner = producer.get(path)
                if owner is None:
                    deps.add(path)  # external: the data folder, a manifest, a metadata file
                elif owner != part.name:
                    deps.add(out_of(path))
        code: set[str] = {"config/config.schema.yaml"}
        if stage.whole_config:
            code.add(config_path)
        for rule in sorted({j.rule for j in mine}):
            if rule in scripts:
                code.add(scripts[rule])
                code |= imported_modules(repo / scripts[rule], repo)
        missing = [key for key in part.part.params if not _has_key(config, key)]
        if missing:
            raise ConfigError(f"stage {stage.name} reads {missing}, which {config_path} does not set: DVC tracks "
                              "only the params a file holds",
                              f"add them to {config_path} (an empty section, `name: {{}}`, will do), then "
                              "regenerate dvc.yaml")
        result["stages"][part.name] = {
            "desc": part.part.description,
            "cmd": f"python -m imgclf.dvc_pipeline --run-stage {part.name}",
            "deps": sorted(deps) + sorted(code),
            "params": [{config_path: list(part.part.params)}],
            # Every out persists: Snakemake, not DVC, decides which of a stage's jobs must run again,
            # so that finished jobs are kept (a killed stage resumes) and the sealed test set is
            # not evaluated again when only a target changed.
            "outs": [{path: {"persist": True}} for path in outs],
        }
    if "evaluate" in present:
        result["metrics"] = ["results/evaluate/test_metrics.json"]
        result["plots"] = [
            {"results/evaluate/deployed/history.csv": {
                "x": "epoch", "y": ["loss", "val_loss", "accuracy", "val_accuracy"],
                "title": "deployed model: training curves"}},
            {"results/evaluate/deployed/predictions.csv": {
                "template": "confusion", "x": "predicted", "y": "label",
                "title": "deployed model: test confusion matrix"}},
            "results/evaluate/deployed/curves.png",
            "results/evaluate/confusion_matrix.png",
            "results/evaluate/metrics_over_seeds.png",
        ]
        if "audit" in present:
            result["plots"].append("results/audit/group_metrics.png")
        if "carbon" in present:
            result["plots"].append("results/carbon/energy_per_stage.png")
    return result


def stage_command(part: DvcStage, workdir: Path, snakemake: str | None = None) -> tuple[list[str], str]:
    """The Snakemake command of a DVC stage, and why jobs are forced (empty when none is).

    Only the stage's rules may run (``--allowed-rules``): DVC has run the earlier stages. Which
    of its jobs run is Snakemake's decision, from its records (params, code, input checksums),
    so that finished jobs are kept. Without records (a fresh clone, after ``dvc pull``) Snakemake
    cannot tell a changed param, and every job of the stage is forced.
    """
    exe = snakemake or str(Path(sys.executable).with_name("snakemake"))
    command = [exe, "--cores", "all", "--allowed-rules", *part.rules, part.stage.name]
    metadata = workdir / ".snakemake" / "metadata"
    reason = ""
    if part.stage.always_force:
        reason = "the data changed, as DVC sees it: validation runs again"
    elif not metadata.is_dir() or not any(metadata.iterdir()):
        reason = "Snakemake has no records in this folder (a fresh clone?): every job of the stage runs"
    if reason:
        command += ["--forcerun", *part.rules]
    return [*command, "--", *part.target], reason


def run_stage(name: str, workdir: Path) -> int:
    """Run one DVC stage's Snakemake jobs (the ``cmd`` of every stage in dvc.yaml)."""
    parts = {part.name: part for part in dvc_stages()}
    if name not in parts:
        print(f"imgclf.dvc_pipeline: no stage {name!r} (stages: {', '.join(parts)})", file=sys.stderr)
        return 2
    command, reason = stage_command(parts[name], workdir)
    if reason:
        print(f"imgclf.dvc_pipeline: {reason}", file=sys.stderr)
    print("imgclf.dvc_pipeline: " + " ".join(command), file=sys.stderr, flush=True)
    # DVC checked the pulled results against dvc.lock: the stage forces its jobs without records.
    env = dict(os.environ, IMGCLF_DVC_STAGE="1")
    return subprocess.run(command, cwd=workdir, check=False, env=env).returncode


def render(content: dict[str, Any]) -> str:
    """``dvc.yaml`` text: the header, then the stages in pipeline order."""
    return HEADER + yaml.safe_dump(content, sort_keys=False, width=110, default_flow_style=False)


def generate(workdir: Path, configfile: Path, snakemake: str | None = None) -> str:
    """``dvc.yaml`` for the workflow run in ``workdir`` on ``configfile``."""
    jobs = dry_run_jobs(workdir, configfile, snakemake)
    try:
        config_path = configfile.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        config_path = str(configfile)
    return render(build_dvc_yaml(jobs, configfile.read_text(encoding="utf-8"), config_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.dvc_pipeline", description=(
        "Write dvc.yaml from the Snakemake workflow and the config (one source of truth)."))
    parser.add_argument("--config", default="config/config.yaml", help="the config file (default: %(default)s)")
    parser.add_argument("--directory", default=".", help="the project folder (default: the current one)")
    parser.add_argument("--output", default="dvc.yaml", help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    parser.add_argument("--run-stage", metavar="STAGE", help="run one stage's Snakemake jobs (dvc.yaml's cmd)")
    args = parser.parse_args(argv)
    workdir = Path(args.directory)
    if args.run_stage:
        return run_stage(args.run_stage, workdir)
    try:
        text = generate(workdir, workdir / args.config)
    except ConfigError as error:
        print(f"imgclf.dvc_pipeline: {error}", file=sys.stderr)
        return 2
    target = workdir / args.output
    if args.check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is stale: regenerate it with `python -m imgclf.dvc_pipeline` (make dvc-yaml)",
                  file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    from imgclf.core.io import atomic_write_text

    atomic_write_text(target, text)
    print(f"wrote {target}: {len(yaml.safe_load(text)['stages'])} stages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
