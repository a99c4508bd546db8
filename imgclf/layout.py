"""Where a finished run's files are, for the command-line tools that read one (``python -m
imgclf.verify``, ``python -m imgclf.retrain``).

The rules declare every path the pipeline writes (rules/<stage>.smk); these are the same
paths, seen from outside the workflow, in one place. A workflow test checks each of them
against a real run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    """The files of the run made in the project folder ``root``."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def digits(self) -> Path:
        """The embedded default data, as rule export_digits writes it."""
        return self.results / "data/digits"

    @property
    def index(self) -> Path:
        return self.results / "data/index.csv"

    @property
    def split(self) -> Path:
        """The split's folder: test.csv, fold_<k>/{train,val}.csv, split.json."""
        return self.results / "split"

    @property
    def test_manifest(self) -> Path:
        return self.split / "test.csv"

    def fold_manifest(self, fold: int, kind: str) -> Path:
        """The ``train`` or ``val`` manifest of a fold."""
        return self.split / f"fold_{fold}/{kind}.csv"

    @property
    def final(self) -> Path:
        """The final trainings' folder (seed_<s>/ each)."""
        return self.results / "final"

    def final_model(self, seed: int) -> Path:
        return self.final / f"seed_{seed}/model.keras"

    def final_metrics(self, seed: int) -> Path:
        return self.final / f"seed_{seed}/metrics.json"

    def test_metrics(self, seed: int) -> Path:
        return self.results / f"evaluate/seed_{seed}/metrics.json"

    @property
    def reproducibility(self) -> Path:
        return self.results / "report/reproducibility.json"
