"""Every document the project points to is in the project: links in the README and docs/, the
docs/ pages code, config and reports name, and the sections of docs/practices.md they cite.
A user's report must never send them to a file they do not have."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The names of the planners' design notes, which live outside the repository and which no
#: shipped file may cite. Assembled from parts so that this file does not cite them either.
FOREIGN = tuple(f"{name}.md" for name in ("PRACTICES", "FACTS", "ANCHORS")) + ("/".join(("shared", "design")),)


def shipped_files() -> list[Path]:
    """Every text file the repository holds (tracked or about to be), but the lock."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    files = []
    for name in filter(None, listed):
        path = REPO / name
        if path.is_file() and path.suffix in (".py", ".smk", ".md", ".yaml", ".yml", ".rst", ".toml", ".txt", "") \
                and name != "requirements/lock.txt":
            files.append(path)
    return files


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def markdown_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # not inside code blocks
    text = re.sub(r"`[^`\n]*`", "", text)  # nor inline code
    return re.findall(r"\]\(([^)\s]+)\)", text)


def dangling_links(path: Path) -> list[str]:
    bad = []
    for target in markdown_links(path):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            bad.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            bad.append(f"{target}: no such heading")
    return bad


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_of_the_readme_and_docs_resolves(path):
    assert dangling_links(path) == []


def test_the_link_check_finds_a_dangling_link_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Title\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-section) [gone](absent.md) [anchor](other.md#nowhere) `[code](x.md)`\n"
                    "```\n[in a block](nowhere.md)\n```\n")
    assert dangling_links(page) == ["absent.md: no such file", "other.md#nowhere: no such heading"]


def test_no_file_cites_a_document_outside_the_repository():
    cited = [f"{p.relative_to(REPO)}: {word}" for p in shipped_files() for word in FOREIGN
             if word in p.read_text(errors="replace") and p.name != "test_references.py"]
    assert cited == []


def test_every_docs_page_the_project_names_exists():
    named = set()
    for path in shipped_files():
        named |= {(path, m) for m in re.findall(r"\bdocs/[\w./-]+\.md", path.read_text(errors="replace"))}
    missing = sorted(f"{p.relative_to(REPO)}: {name}" for p, name in named if not (REPO / name).is_file())
    assert missing == []
    assert len(named) > 20  # the code, the config and the reports do point into docs/


def test_cited_sections_and_steps_of_the_practices_exist():
    text = (REPO / "docs" / "practices.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\.", text, flags=re.M)}
    steps = re.findall(r"^(\d+)\. ", text.split("## 2.", 1)[1].split("## 3.", 1)[0], flags=re.M)
    cited = []
    for path in shipped_files():
        for section, step in re.findall(r"docs/practices\.md,? section (\d+)(?:, step (\d+))?",
                                        path.read_text(errors="replace")):
            cited.append((path.relative_to(REPO), int(section), step))
    assert cited, "the code cites the practices by section"
    assert [c for c in cited if c[1] not in sections] == []
    assert [c for c in cited if c[2] and (c[1] != 2 or c[2] not in steps)] == []
