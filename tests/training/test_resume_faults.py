"""A damaged resume state (a file cut short by a kill, deleted, or a corrupt state.json) is
reported, thrown away, and the training starts afresh instead of failing; the run records it."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

import keras  # noqa: E402

from imgclf.core.config import validate_config  # noqa: E402
from imgclf.training import loop  # noqa: E402
from imgclf.training.loop import RunFiles  # noqa: E402
from imgclf.training.run import run_training  # noqa: E402

EPOCHS = 4
CONFIG = validate_config({"seed": 3, "train": {"batch_size": 16, "epochs": EPOCHS, "tensorboard_histogram_freq": 0,
                                               "early_stopping": {"enabled": False}}})


def files_in(path: Path) -> RunFiles:
    path.mkdir(parents=True, exist_ok=True)
    return RunFiles(path / "history.csv", path / "best.weights.h5", path / "samples.npz", path / "resume")


class Log:
    def __init__(self):
        self.info_lines, self.warnings = [], []

    def info(self, msg, *args):
        self.info_lines.append(msg % args)

    def warning(self, msg, *args):
        self.warnings.append(msg % args)


@pytest.fixture(scope="module")
def interrupted(fold, tmp_path_factory):
    """A run killed after epoch 2 of 4: its folder, with the resume state of epoch 2 (kept pristine)."""
    files = files_in(tmp_path_factory.mktemp("interrupted") / "run")
    original = loop._Recorder.on_epoch_end

    def crash_after_epoch_2(self, epoch, logs=None):
        original(self, epoch, logs)  # the state of this epoch is saved first, as in a real run
        if epoch == 1:
            raise KeyboardInterrupt("killed")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop._Recorder, "on_epoch_end", crash_after_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            run_training(CONFIG, fold, files, 16)
    state = json.loads((files.resume_dir / "state.json").read_text())
    assert state["epoch"] == 2
    assert set(state["checksums"]) == {"model.keras", "weights.npz", "best.weights.h5"}
    return files.resume_dir.parent


def rerun(fold, interrupted: Path, tmp_path: Path, damage) -> tuple[RunFiles, dict, Log]:
    """Copy the interrupted run, ``damage(resume_dir)`` it, and run the training again."""
    shutil.copytree(interrupted, tmp_path / "run")
    files = files_in(tmp_path / "run")
    damage(files.resume_dir)
    keras.backend.clear_session()
    log = Log()
    metrics = run_training(CONFIG, fold, files, 16, log)
    return files, metrics, log


def truncate(name):
    def damage(folder: Path):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:min(3000, len(data) // 2)])  # as a kill mid-write leaves it
    return damage


def delete(name):
    def damage(folder: Path):
        (folder / name).unlink()
    return damage


def corrupt_json(folder: Path):
    text = (folder / "state.json").read_text()
    (folder / "state.json").write_text(text[: len(text) // 2])


def legacy_truncated_model(folder: Path):
    """A state saved before checksums were recorded, its model cut short: found by loading it."""
    state = json.loads((folder / "state.json").read_text())
    del state["checksums"]
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "best.weights.h5").unlink()
    truncate("model.keras")(folder)


FAULTS = {
    "truncated model.keras": (truncate("model.keras"), "model.keras (3,000 bytes) does not match the sha256"),
    "truncated weights.npz": (truncate("weights.npz"), "weights.npz ("),
    "truncated best.weights.h5": (truncate("best.weights.h5"), "best.weights.h5 ("),
    "deleted model.keras": (delete("model.keras"), "model.keras is missing"),
    "deleted weights.npz": (delete("weights.npz"), "weights.npz is missing"),
    "deleted best.weights.h5": (delete("best.weights.h5"), "best.weights.h5 is missing"),
    "deleted state.json": (delete("state.json"), "state.json is missing"),
    "corrupt state.json": (corrupt_json, "state.json cannot be read"),
    "legacy state, truncated model.keras": (legacy_truncated_model, "model.keras cannot be loaded"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_damaged_resume_state_is_discarded_and_the_run_starts_afresh(fold, interrupted, tmp_path, fault):
    damage, reason = FAULTS[fault]
    files, metrics, log = rerun(fold, interrupted, tmp_path, damage)
    # Completed, from epoch 1, and nothing of the damaged state is left.
    assert metrics["status"] == "completed" and metrics["epochs_run"] == EPOCHS
    assert pd.read_csv(files.history)["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert not files.resume_dir.exists()
    assert not any("resuming" in line for line in log.info_lines)
    # Logged as such: the folder, what was wrong, a fresh start.
    (warning,) = log.warnings
    assert warning.startswith(f"corrupt or partial resume state in {files.resume_dir}: ")
    assert reason in warning and warning.endswith("it was removed and the training starts afresh from epoch 1")
    # Recorded in the run's metrics.
    assert metrics["resumed"] is None
    assert reason in metrics["resume_discarded"]
    json.dumps(metrics)  # still JSON-ready


@pytest.mark.slow
def test_an_intact_state_resumes_and_restores_its_own_best_checkpoint(fold, interrupted, tmp_path):
    # The interrupted attempt cut the checkpoint beside the state short (a later epoch's save):
    # the state's own copy replaces it.
    files, metrics, log = rerun(fold, interrupted, tmp_path,
                                lambda folder: (folder.parent / "best.weights.h5").write_bytes(b"\0" * 100))
    assert "resuming from epoch 2 (phase 1)" in log.info_lines and not log.warnings
    assert metrics["resumed"] == {"from_epoch": 2, "phase": 1} and metrics["resume_discarded"] is None
    assert metrics["status"] == "completed" and metrics["epochs_run"] == EPOCHS
    assert not files.resume_dir.exists()


@pytest.mark.slow
def test_a_fresh_run_records_no_resume(fold, tmp_path):
    files = files_in(tmp_path / "run")
    files.best_weights.write_bytes(b"stale checkpoint of an earlier attempt")
    keras.backend.clear_session()
    metrics = run_training(CONFIG, fold, files, 16, Log())
    assert metrics["resumed"] is None and metrics["resume_discarded"] is None
    assert files.best_weights.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"  # this run's own checkpoint


def test_the_state_records_a_checksum_of_each_file_and_mismatches_are_refused(tmp_path):
    files = files_in(tmp_path / "run")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.save_weights(str(files.best_weights))
    state = {**loop._fresh_state(), "epoch": 1, "best_epoch": 1, "weights": {"a/kernel/0": [1.0, 2.0]}}
    loop.save_resume_state(files, model, state, "fp")
    saved = json.loads((files.resume_dir / "state.json").read_text())
    assert sorted(saved["checksums"]) == ["best.weights.h5", "model.keras", "weights.npz"]
    assert not list(tmp_path.glob("run/.resume.*"))  # no staging folder left
    restored_model, restored = loop.load_resume_state(files, "fp")
    assert restored["epoch"] == 1 and "checksums" not in restored
    with open(files.resume_dir / "weights.npz", "ab") as handle:
        handle.write(b"\0")  # still loads, but is not what was saved
    with pytest.raises(loop.CorruptResumeState, match="weights.npz .* does not match the sha256"):
        loop.load_resume_state(files, "fp")
    assert loop.load_resume_state(files, "other settings") is None and not files.resume_dir.exists()
