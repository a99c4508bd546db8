"""One Snakemake job, at the edge: its log, its clean failure, and writing what it returns.

Every script under ``scripts/<stage>/`` has the same shape::

    with job(snakemake.log[0], "tune_search") as log:
        outputs = tune_search(...the rule's inputs and params...)
        write_outputs(snakemake.output, outputs)

The function it calls lives in the stage's package, takes the paths and settings the rule
declares and returns each output's content by the output's name; :func:`write_outputs` writes
them (atomically) in the order given, so that a file whose presence marks a complete result can
come last.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from imgclf.core.errors import ImgclfError
from imgclf.core.io import atomic_write_bytes, atomic_write_text, csv_appender, write_csv, write_json  # noqa: F401 (csv_appender: for scripts)


@dataclass(frozen=True)
class JobResources:
    """What a TensorFlow job runs with.

    Attributes:
        threads: TensorFlow's intra-op threads: the config's ``threads.<stage>``, the same on
            every machine, since they change the numbers (recorded, and sealed for a final model).
        cpus: The CPUs the job was given (Snakemake's threads: the profile's set-threads, at most
            --cores): the input pipeline runs on them, which changes no number.
        memory_mb: The job's memory (the rule's mem_mb), for ``train.cache: auto``; None if unknown.
    """

    threads: int
    cpus: int | None = None
    memory_mb: float | None = None

    @classmethod
    def of(cls, snakemake: Any, stage: str) -> "JobResources":
        """The resources of the running Snakemake job of ``stage`` (a key of the config's threads)."""
        memory = snakemake.resources.get("mem_mb")
        return cls(int(snakemake.config["threads"][stage]), int(snakemake.threads),
                   float(memory) if isinstance(memory, (int, float)) else None)


def get_logger(name: str, log_path: str | None = None) -> logging.Logger:
    """A logger for one job: INFO and above to stderr (the terminal), DEBUG and above to the
    rule's log file (long tables go there only, at DEBUG)."""
    logger = logging.getLogger(f"imgclf.{name}")
    logger.setLevel(logging.DEBUG)
    logger.handlers.clear()
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO)
    targets: list[logging.Handler] = [console]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        targets.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    for handler in targets:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


@contextmanager
def job(log_path: str | None, title: str) -> Iterator[logging.Logger]:
    """Run one job: a user error (:class:`ImgclfError`) is logged without a traceback and ends the
    process with status 1; the job's time is logged at the end.

    Args:
        log_path: The rule's log file.
        title: What the job is, as its log lines name it (``final_train seed 42``).
    """
    logger = get_logger(title, log_path)
    started = time.monotonic()
    try:
        yield logger
    except ImgclfError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    logger.info("done in %.1f s", time.monotonic() - started)


def progress_logger(logger: logging.Logger, what: str) -> Callable[[int, int], None]:
    """A (done, total) callback that logs progress with a rate."""
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        logger.info("%s: %d/%d (%.0f%%, %.0f/s)", what, done, total, 100 * done / max(total, 1),
                    done / elapsed)

    return report


def write_file(path: str | Path, content: Any) -> None:
    """Write one output, by what ``content`` is: a table (CSV), text, bytes, a matplotlib
    figure (PNG, at the figure's dpi), arrays by name (``.npz``) or any JSON-ready value.

    Raises:
        TypeError: Content that does not fit the file's kind (a table for a ``.json`` file...).
    """
    path = Path(path)
    if isinstance(content, pd.DataFrame):
        if path.suffix != ".csv":
            raise TypeError(f"a table can only be written as .csv, not {path}")
        write_csv(path, content)
    elif isinstance(content, str):
        atomic_write_text(path, content)
    elif isinstance(content, bytes):
        atomic_write_bytes(path, content)
    elif path.suffix == ".png":
        _write_figure(path, content)
    elif path.suffix == ".npz":
        import io

        import numpy as np

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **content)
        atomic_write_bytes(path, buffer.getvalue())
    elif path.suffix == ".json":
        write_json(path, content)
    else:
        raise TypeError(f"no writer for {type(content).__name__} content at {path}")


def _write_figure(path: Path, figure: Any) -> None:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def write_outputs(output: Mapping[str, Any], contents: Mapping[str, Any]) -> None:
    """Write each named content to the rule's output of that name, in the order given.

    Args:
        output: ``snakemake.output`` (or any mapping of output names to paths; an output that
            is a list of paths takes a list of contents, one per path).
        contents: Content by output name (see :func:`write_file`).

    Raises:
        KeyError: A content whose name the rule does not declare as an output.
    """
    for name, content in contents.items():
        try:
            target = output[name]
        except (KeyError, AttributeError):
            raise KeyError(f"the rule declares no output named {name!r}") from None
        if isinstance(target, (str, Path)):
            write_file(target, content)
            continue
        targets = list(target)
        if len(targets) != len(content):
            raise ValueError(f"output {name!r} has {len(targets)} paths but {len(content)} contents")
        for path, item in zip(targets, content):
            write_file(path, item)
