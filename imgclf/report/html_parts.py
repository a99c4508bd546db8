"""Small HTML helpers of the report: escaping, numbers, tables, embedded figures."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table: floats to ``digits`` significant places, None as a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, digits: int = 4) -> str:
    """An HTML table of dict rows (numbers right-aligned)."""
    if not rows:
        return '<p class="note">(none)</p>'
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="num">{esc(fmt(value, digits))}</td>' if numeric
                         else f"<td>{esc(fmt(value, digits))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(path: str | Path | None, alt: str) -> str:
    """A PNG embedded as a data URI (the report stays one file)."""
    if not path or not Path(path).is_file():
        return f'<p class="note">({esc(alt)}: not produced)</p>'
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}" title="{esc(alt)}">'


def verdict(flag: bool | None, yes: str = "met", no: str = "NOT met") -> str:
    if flag is None:
        return '<span class="note">n/a</span>'
    return f'<span class="ok">{esc(yes)}</span>' if flag else f'<span class="bad">{esc(no)}</span>'


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
