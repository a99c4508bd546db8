"""Writing files at the edges: atomically, so nothing is left half-written."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def umask() -> int:
    """The process's file-mode creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, content: bytes, fsync: bool = False) -> None:
    """Write ``content`` to ``path`` through a temporary file and a rename; ``fsync`` flushes
    it to disk before the rename (for state a killed job's retry must read back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); results are shared files: the usual mode.
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, fsync: bool = False) -> None:
    """Write ``text`` (UTF-8, Unix line ends as given) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync)


def read_json(path: str | Path | None) -> Any:
    """A JSON file's content, or None when there is no such file."""
    return json.loads(Path(path).read_text(encoding="utf-8")) if path and Path(path).is_file() else None


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON (stable across runs)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def csv_text(table: pd.DataFrame) -> str:
    """A DataFrame as CSV text with Unix line ends and no index."""
    return table.to_csv(index=False, lineterminator="\n")


def write_csv(path: str | Path, table: pd.DataFrame) -> None:
    """Write a DataFrame as CSV, atomically."""
    atomic_write_text(path, csv_text(table))


@contextmanager
def csv_appender(path: str | Path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Write a CSV in pieces with constant memory, atomically: the tables given to the yielded
    function are appended to a temporary file beside ``path`` (the header once), renamed to
    ``path`` when the block ends without error and removed otherwise, so that a failed job never
    leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~umask())
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            header = [True]

            def append(table: pd.DataFrame) -> None:
                handle.write(table.to_csv(index=False, header=header[0], lineterminator="\n"))
                header[0] = False

            yield append
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_sha256(record: Any) -> str:
    """SHA-256 of a JSON-ready record as canonical JSON (sorted keys): stable across runs."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Index columns read as numbers; every other column (labels, groups) stays text,
#: so that ids such as 007 keep their zeros and a class named NA stays a class.
#: Values of the index's mode column that are grayscale images (one channel).
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
NUMERIC_INDEX_COLUMNS = ("width", "height", "bit_depth", "exif_orientation", "brightness", "contrast", "sharpness")


def read_index(path: str | Path) -> pd.DataFrame:
    """Read ``index.csv`` (or a manifest): identifiers as text, sizes as numbers."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    for column in NUMERIC_INDEX_COLUMNS:
        if column in table.columns:
            table[column] = pd.to_numeric(table[column])
    return table
