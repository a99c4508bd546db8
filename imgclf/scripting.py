"""Helpers for the thin Snakemake scripts: logging and clean failures."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from imgclf.errors import ImgclfError


def get_logger(name: str, log_path: str | None = None) -> logging.Logger:
    """A logger that writes to stderr (the terminal) and to the rule's log file."""
    logger = logging.getLogger(f"imgclf.{name}")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S")
    targets: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        targets.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    for handler in targets:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


@contextmanager
def step(name: str, log_path: str | None = None) -> Iterator[logging.Logger]:
    """Run a pipeline step: user errors are logged without a traceback and exit 1."""
    logger = get_logger(name, log_path)
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
