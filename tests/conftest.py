"""Shared fixtures: tiny image folders made by the tests themselves, and the workflow runs every
stage's workflow tests share (session-scoped: each runs once per test session)."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


#: Session fixtures that run the real Snakefile: every test that uses one runs on the same worker.
SHARED_RUNS = ("pipeline_run", "digits_run")
#: The work units of many minutes (a fixture's name, or a module's path): an xdist worker takes them first.
LONGEST_UNITS = ("tests/workflow/test_slurm.py", "pipeline_run")


def xdist_group_of(item: pytest.Item) -> str:
    """The shared workflow run the test uses, or else its module's path."""
    shared = [name for name in SHARED_RUNS if name in item.fixturenames]
    return shared[0] if shared else item.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Work units for pytest-xdist's ``--dist loadgroup`` (``make test``): the tests of one shared
    workflow run form one unit, so that run happens once per session; the others go by module, so
    that a module's fixtures (a SLURM cluster, a DVC repository) start once."""
    groups = {item.nodeid: xdist_group_of(item) for item in items}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    if hasattr(config, "workerinput"):  # an xdist worker: the longest units first, the short ones fill in
        items.sort(key=lambda item: groups[item.nodeid] not in LONGEST_UNITS)


def shared_dataset(name: str) -> Path:
    """A data set from ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the shared data sets are only beside the project's CI clone")
    return path


def pattern(seed: int, size: int = 32, mode: str = "RGB") -> Image.Image:
    """A smooth random image (distinct seeds give distinct perceptual hashes)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(blocks, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    return image.convert(mode)


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def make_folder(root: Path, classes: dict[str, int], start_seed: int = 0, size: int = 32) -> Path:
    """``<root>/<class>/<i>.png`` with distinct images; returns root."""
    seed = start_seed
    for label, count in classes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            save(pattern(seed, size), root / label / f"{label}_{i:03d}.png")
            seed += 1
    return root


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def huge_header_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small PNG whose header claims a huge size (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


BAD_FILES = {
    # name: (writer, expected problem code)
    "corrupt.png": "corrupt",
    "truncated.jpg": "truncated",
    "empty.png": "zero_byte",
    "text.jpg": "not_an_image",
    "one_pixel.png": "too_small",
    "huge.png": "decompression_bomb",
    "scan.tiff": "unsupported_format",
}


def write_bad_file(path: Path, kind: str, seed: int = 999) -> Path:
    """Write one of the BAD_FILES kinds at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    if kind == "corrupt.png":
        data = bytearray(png_bytes(image))
        middle = len(data) // 2
        data[middle:middle + 64] = b"\x00" * 64  # inside IDAT: breaks its CRC and the stream
        path.write_bytes(bytes(data))
    elif kind == "truncated.jpg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "empty.png":
        path.write_bytes(b"")
    elif kind == "text.jpg":
        path.write_text("this is not an image\n")
    elif kind == "one_pixel.png":
        Image.new("RGB", (1, 1), (255, 0, 0)).save(path)
    elif kind == "huge.png":
        path.write_bytes(huge_header_png())
    elif kind == "scan.tiff":
        image.save(path, format="TIFF")
    else:
        raise ValueError(kind)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three balanced classes of 12 distinct 32x32 RGB images."""
    return make_folder(tmp_path / "images", {"cat": 12, "dog": 12, "fox": 12})


def snakemake_command() -> list[str]:
    """The snakemake of the running interpreter's environment."""
    exe = Path(sys.executable).with_name("snakemake")
    return [str(exe)] if exe.exists() else [shutil.which("snakemake") or "snakemake"]


def run_snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real Snakefile in ``workdir``."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.run(
        [*snakemake_command(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--cores", "2", *args],
        capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    """Three classes of 16 tiny images, validated and split: the fold-0 manifests."""
    from imgclf.core.config import validate_config
    from imgclf.data.index import validate_source
    from imgclf.core.io import write_csv
    from imgclf.split.folds import SplitOptions, make_split
    from imgclf.training.run import TrainingInputs

    base = tmp_path_factory.mktemp("data")
    root = make_folder(base / "images", {"a": 16, "b": 16, "c": 16})
    config = validate_config({"data": {"source": "folder", "root": str(root)},
                              "validation": {"min_images_per_class": 5}, "split": {"n_folds": 2}})
    result = validate_source(config, root)
    write_csv(base / "index.csv", result.index)
    split = make_split(result.index, SplitOptions.from_config(config))
    train, val = split.folds[0]
    write_csv(base / "train.csv", train)
    write_csv(base / "val.csv", val)
    return TrainingInputs(base / "index.csv", base / "train.csv", base / "val.csv", root)


# -- the real Snakefile, run once per session for every stage's workflow tests ---------------
def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


#: Targets of the tests about data and split: the default target would train.
UNTIL_SPLIT = ("results/data/validation.md", "results/split/split.json")

SPLIT_FILES = ["test.csv", "split.json"] + [f"fold_{k}/{s}.csv" for k in range(3) for s in ("train", "val")]


def jobs_run(log: str) -> set[str]:
    """Rule names in Snakemake's "Job stats" table."""
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return {line.split()[0] for line in table.splitlines()[3:] if line.strip()}


def snapshot(workdir: Path) -> dict[str, bytes]:
    return {name: (workdir / "results" / "split" / name).read_bytes() for name in SPLIT_FILES}


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """The default digits data through validation and split, run twice from scratch."""
    runs = []
    for name in ("first", "second"):
        workdir = tmp_path_factory.mktemp(name)
        config = write_config(workdir, {"data": {"source": "digits", "digits": {"size": 16},
                                                 "image_size": [16, 16]}, "split": {"n_folds": 3},
                                        "explore": {"studies": []}})
        result = run_snakemake(workdir, *UNTIL_SPLIT, "--configfile", str(config))
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(workdir)
    return runs


PIPELINE_CONFIG = {
    "data": {"source": "digits", "digits": {"size": 16}, "image_size": [16, 16]},
    "split": {"n_folds": 2},
    "train": {"batch_size": 32, "epochs": 1, "tensorboard_histogram_freq": 0},
    "explore": {"studies": [{"name": "opt", "question": "Which optimizer?",
                             "scientific": {"train.optimizer": ["adam", "sgd"]},
                             "nuisance": {"train.learning_rate": [0.01]}}]},
    "tune": {"enabled": True, "max_trials": 2, "epochs": 1, "data_fraction": 0.5,
             "fix_from_study": "opt",
             "search_space": [{"name": "model.dropout", "type": "float", "min": 0.0, "max": 0.5}]},
    "final": {"n_seeds": 2, "folds": "rotate"},
    "targets": [{"metric": "accuracy", "min": 0.2}, {"metric": "ece", "max": 0.0},
                {"metric": "sensitivity", "class": "8", "min": 0.6}],  # an operating threshold for 8
    "export": {"latency_runs": 10, "representative_images": 50},
}


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """The whole default target on tiny digits: exploration, tuning, 2 final seeds, evaluation."""
    workdir = tmp_path_factory.mktemp("pipeline")
    config = write_config(workdir, PIPELINE_CONFIG)
    result = run_snakemake(workdir, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config, result.stderr


def job_inputs(log: str) -> list[tuple[str, list[str]]]:
    """(rule, input files) of every job in a Snakemake log (jobs started together share a block)."""
    jobs: list[tuple[str, list[str]]] = []
    for line in log.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and line.rstrip().endswith(":"):
            jobs.append((words[1].rstrip(":"), []))
        elif jobs and line.startswith("    input:") and not jobs[-1][1]:
            jobs[-1][1].extend(p.strip() for p in line.split(":", 1)[1].split(",") if p.strip())
    return jobs
