"""Running one job at the edge: writing what a stage function returns, clean failures, a quiet
TensorFlow start, and the stage packages' lazy interfaces."""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imgclf.core.errors import ImgclfError
from imgclf.core.job import job, write_file, write_outputs
from imgclf.core.lazy import lazy_interface


def figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    fig.set_dpi(50)
    return fig


def test_each_kind_of_content_is_written_by_its_file(tmp_path):
    outputs = {"table": str(tmp_path / "t.csv"), "record": str(tmp_path / "r.json"), "text": str(tmp_path / "r.md"),
               "blob": str(tmp_path / "m.tflite"), "plot": str(tmp_path / "p.png"),
               "arrays": str(tmp_path / "a.npz"), "folds": [str(tmp_path / "f0.csv"), str(tmp_path / "f1.csv")]}
    write_outputs(outputs, {
        "table": pd.DataFrame({"path": ["a.png"], "label": ["x"]}), "record": {"b": 1, "a": [1, 2]},
        "text": "# Title\n", "blob": b"\x00\x01", "plot": figure(), "arrays": {"embeddings": np.eye(2)},
        "folds": [pd.DataFrame({"k": [0]}), pd.DataFrame({"k": [1]})]})
    assert (tmp_path / "t.csv").read_text() == "path,label\na.png,x\n"
    assert (tmp_path / "r.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'  # sorted keys
    assert (tmp_path / "r.md").read_text() == "# Title\n" and (tmp_path / "m.tflite").read_bytes() == b"\x00\x01"
    from PIL import Image

    assert Image.open(tmp_path / "p.png").size == (100, 50)  # 2x1 inches at the figure's 50 dpi
    assert np.array_equal(np.load(tmp_path / "a.npz")["embeddings"], np.eye(2))
    assert (tmp_path / "f1.csv").read_text() == "k\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["t.csv", "r.json", "r.md", "m.tflite", "p.png", "a.npz", "f0.csv", "f1.csv"])  # no temporary left


def test_contents_are_written_in_the_order_given(tmp_path, monkeypatch):
    """A split's summary comes last: its presence marks a complete split."""
    import imgclf.core.job as module

    written = []
    monkeypatch.setattr(module, "write_file", lambda path, content: written.append(Path(path).stem))
    outputs = {name: str(tmp_path / f"{name}.json") for name in ("summary", "first", "second")}
    write_outputs(outputs, {"first": {}, "second": {}, "summary": {}})
    assert written == ["first", "second", "summary"]


def test_a_content_the_rule_does_not_declare_or_cannot_hold_is_refused(tmp_path):
    with pytest.raises(KeyError, match="no output named 'other'"):
        write_outputs({"record": str(tmp_path / "r.json")}, {"other": {}})
    with pytest.raises(TypeError, match="a table can only be written as .csv"):
        write_file(tmp_path / "r.json", pd.DataFrame({"a": [1]}))
    with pytest.raises(ValueError, match="2 paths but 1 contents"):
        write_outputs({"folds": [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]}, {"folds": [pd.DataFrame()]})
    with pytest.raises(TypeError, match="no writer"):
        write_file(tmp_path / "x.bin", 3.5)
    assert not list(tmp_path.iterdir())


def test_a_user_error_ends_the_job_with_its_message_and_no_traceback(tmp_path, capsys):
    log_path = tmp_path / "logs" / "job.log"
    with pytest.raises(SystemExit) as stop:
        with job(str(log_path), "demo") as log:
            log.info("started")
            log.debug("a long table, for the log file only")
            raise ImgclfError("the file x.png is broken", "remove it")
    assert stop.value.code == 1
    console = capsys.readouterr().err
    assert "the file x.png is broken\n  What to do: remove it" in console and "Traceback" not in console
    assert "a long table" not in console
    text = log_path.read_text()
    assert "started" in text and "a long table, for the log file only" in text and "What to do: remove it" in text


def test_a_successful_job_logs_its_time(tmp_path, capsys):
    with job(str(tmp_path / "ok.log"), "demo"):
        pass
    assert "demo INFO: done in" in (tmp_path / "ok.log").read_text()
    logging.getLogger("imgclf.demo").handlers.clear()


NATIVE = textwrap.dedent("""
    import ctypes, os, sys
    from imgclf.core.runtime import quiet_native_stderr
    libc = ctypes.CDLL(None)
    def native(text):
        libc.write(2, text.encode(), len(text))
    with quiet_native_stderr():
        native("chatter at start-up\\n")
    print("after", file=sys.stderr)
    if sys.argv[1] == "fail":
        with quiet_native_stderr():
            native("why it failed\\n")
            raise RuntimeError("boom")
""")


@pytest.mark.parametrize("verbose", ["", "1"])
def test_native_start_up_chatter_is_held_back_unless_asked_for_and_shown_on_failure(verbose):
    env = {**os.environ, "IMGCLF_TF_LOGS": verbose, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    quiet = subprocess.run([sys.executable, "-c", NATIVE, "ok"], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and "after" in quiet.stderr
    assert ("chatter at start-up" in quiet.stderr) == bool(verbose)
    failed = subprocess.run([sys.executable, "-c", NATIVE, "fail"], capture_output=True, text=True, env=env)
    assert failed.returncode != 0 and "why it failed" in failed.stderr and "boom" in failed.stderr


def test_a_tensorflow_job_starts_without_tensorflows_notices():
    code = "from imgclf.core import runtime; runtime.configure(1, 1); import tensorflow as tf; tf.ones(1)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("IMGCLF_TF_LOGS", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "oneDNN" not in result.stderr and "absl" not in result.stderr, result.stderr


def test_an_interface_serves_only_its_names_and_imports_on_first_use():
    names, getter = lazy_interface("imgclf.core", {"io": ["json_sha256"]})
    assert names == ["json_sha256"] and getter("json_sha256")({"a": 1}) == getter("json_sha256")({"a": 1})
    with pytest.raises(AttributeError, match="its interface: json_sha256"):
        getter("sha256_file")
    code = "import sys, imgclf.final, imgclf.explore; assert 'tensorflow' not in sys.modules; " \
           "from imgclf.explore import check_studies; assert 'matplotlib' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_job_resources_take_the_configs_threads_and_the_cpus_and_memory_the_job_was_given():
    from types import SimpleNamespace

    from imgclf.core.job import JobResources

    job = SimpleNamespace(config={"threads": {"final": 1, "tune": 2}}, threads=8, resources={"mem_mb": 34001})
    assert JobResources.of(job, "final") == JobResources(threads=1, cpus=8, memory_mb=34001.0)
    assert JobResources.of(job, "tune").threads == 2
    # A memory Snakemake could not evaluate (a string) is unknown, not a number.
    unknown = SimpleNamespace(config={"threads": {"final": 1}}, threads=1, resources={"mem_mb": "<TBD>"})
    assert JobResources.of(unknown, "final").memory_mb is None
