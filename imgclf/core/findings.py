"""Findings: what validation and the split report, each with a severity."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
#: How many file names a finding keeps in JSON (the count is always exact).
MAX_FILES_LISTED = 1000


@dataclass
class Finding:
    """One thing validation noticed.

    Attributes:
        code: Stable identifier (``corrupt``, ``class_too_small``...), documented
            in docs/validation.md.
        severity: ``error`` stops the pipeline, ``warning`` is reported and the
            run goes on, ``info`` describes the data.
        message: One readable sentence.
        files: The files concerned (relative paths), possibly truncated.
        count: How many files (or pairs, or groups) are concerned.
        hint: What to do about it.
        details: Figures behind the finding.
    """

    code: str
    severity: Severity
    message: str
    files: list[str] = field(default_factory=list)
    count: int = 0
    hint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if not self.count:
            self.count = len(self.files)
        self.files = sorted(self.files)[:MAX_FILES_LISTED]

    def to_dict(self) -> dict[str, Any]:
        """The finding as a JSON-ready dict."""
        return asdict(self)


def count_by_severity(findings: list[Finding]) -> dict[str, int]:
    """Number of findings of each severity."""
    return {s: sum(f.severity == s for f in findings) for s in SEVERITIES}


def format_finding(finding: Finding, max_files: int = 10) -> str:
    """A plain-text block for logs and error messages."""
    lines = [f"[{finding.severity.upper()}] {finding.code}: {finding.message}"]
    for name in finding.files[:max_files]:
        lines.append(f"    - {name}")
    if finding.count > max_files and finding.files:
        lines.append(f"    ... and {finding.count - min(max_files, len(finding.files))} more")
    if finding.hint:
        lines.append(f"    What to do: {finding.hint}")
    return "\n".join(lines)
