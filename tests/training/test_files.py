"""What every training rule declares, read the same way by all: inputs, run files, batch size."""

import json
from pathlib import Path

import pytest
from snakemake.iocontainers import Namedlist

from imgclf.core.errors import ImgclfError
from imgclf.training.files import RunFiles, TrainingInputs, resolve_batch_size


def test_inputs_and_run_files_come_from_the_rules_named_files():
    inputs = Namedlist(fromdict={"index": "i.csv", "train": "t.csv", "val": "v.csv", "data_root": "img",
                                 "data_audit": "gate.json"})
    assert TrainingInputs.of(inputs) == TrainingInputs(Path("i.csv"), Path("t.csv"), Path("v.csv"), Path("img"))
    output = Namedlist(fromdict={"history": "h.csv", "best_weights": "b.weights.h5", "weight_samples": "w.npz",
                                 "metrics": "m.json"})
    params = Namedlist(fromdict={"resume_dir": "resume", "tensorboard_dir": "tb", "emissions": "e.csv"})
    files = RunFiles.of(output, params)
    assert files == RunFiles(Path("h.csv"), Path("b.weights.h5"), Path("w.npz"), Path("resume"), Path("tb"), None)
    with_model = Namedlist(fromdict={**dict(output.items()), "model": "model.keras"})
    assert RunFiles.of(with_model, params).model == Path("model.keras")
    assert RunFiles.of({**dict(output.items()), "model": "x.keras"}, dict(params.items())).model == Path("x.keras")


def test_the_batch_size_is_the_configured_one_or_the_probes_choice(tmp_path):
    assert resolve_batch_size(64, None) == 64
    probe = tmp_path / "batch_size.json"
    probe.write_text(json.dumps({"chosen": 128, "throughput": {}}))
    assert resolve_batch_size("auto", probe) == 128
    with pytest.raises(ImgclfError, match="batch-size probe's record is missing"):
        resolve_batch_size("auto", None)
    with pytest.raises(ImgclfError, match="absent.json"):
        resolve_batch_size("auto", tmp_path / "absent.json")
