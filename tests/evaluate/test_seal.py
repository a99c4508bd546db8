"""The sealed test set: a changed decision refuses a new evaluation unless a reason is given."""

import json

import pytest

from imgclf.evaluate.seal import SealedTestError, changes, check_seal, read_seal, record_evaluation


def test_the_seal_refuses_changed_decisions_unless_a_reason_is_given(tmp_path):
    seal_path, events = tmp_path / "seal" / "seed_1.json", tmp_path / "seal" / "events.jsonl"
    now = {"config": {"train": {"learning_rate": 0.01}}, "train_manifest_sha256": "t", "val_manifest_sha256": "v"}
    assert read_seal(seal_path) is None
    event = check_seal(None, now, None, 1, "training")
    assert event["status"] == "first"
    record_evaluation(seal_path, events, 1, {**now, "test_manifest_sha256": "x"}, event, {"accuracy": 0.9})
    seal = read_seal(seal_path)
    assert seal["evaluations"] == 1 and seal["test_manifest_sha256"] == "x"
    # Same decisions: allowed (training does not know the test manifest; evaluation does).
    assert check_seal(seal, now, None, 1, "training")["status"] == "same"
    assert check_seal(seal, {**now, "test_manifest_sha256": "x"}, None, 1, "evaluation")["status"] == "same"
    changed = {**now, "config": {"train": {"learning_rate": 0.02}}}
    with pytest.raises(SealedTestError, match=r"config.train.learning_rate: 0.01 -> 0.02") as error:
        check_seal(seal, changed, None, 1, "training")
    assert "evaluation.unseal_reason" in str(error.value)
    assert "snakemake --directory <folder>" in str(error.value)  # another data set: a folder of its own
    with pytest.raises(SealedTestError, match="test_manifest_sha256"):
        check_seal(seal, {**now, "test_manifest_sha256": "y"}, None, 1, "evaluation")
    event = check_seal(seal, changed, "a reviewer asked for it", 1, "training")
    assert event["status"] == "unsealed" and event["changes"][0]["key"] == "config.train.learning_rate"
    record_evaluation(seal_path, events, 1, {**changed, "test_manifest_sha256": "x"}, event, {"accuracy": 0.8})
    seal = read_seal(seal_path)
    assert seal["evaluations"] == 2 and [h["status"] for h in seal["history"]] == ["first", "unsealed"]
    assert check_seal(seal, changed, None, 1, "training")["status"] == "same"  # sealed again, on the new decisions
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["status"] for e in lines] == ["first", "unsealed"] and lines[1]["reason"] == "a reviewer asked for it"


def test_changes_list_every_differing_key():
    assert changes({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 3], "d": 0}}) == [
        {"key": "a.c", "sealed": [1, 2], "now": [1, 3]}, {"key": "a.d", "sealed": None, "now": 0}]


def test_a_config_naming_other_data_is_refused_at_load_when_a_seal_exists():
    from imgclf.evaluate.seal import check_sealed_data

    sealed_config = {"seed": 42, "data": {"source": "digits", "digits": {"size": 16}, "image_size": [16, 16]}}
    seals = {"seed_42.json": {"evaluated_at": "2026-12-06T10:00:00+00:00",
                              "decisions": {"config": sealed_config}}}
    same = {**sealed_config, "data": {**sealed_config["data"], "image_size": [32, 32]}, "evaluation": {}}
    check_sealed_data(same, seals)  # the input size is the model's: the seal at training decides
    other = {"seed": 42, "data": {"source": "folder", "root": "/data/lesions"}, "evaluation": {}}
    with pytest.raises(SealedTestError, match=r"seed_42.json") as error:
        check_sealed_data(other, seals)
    message = str(error.value)
    assert 'data.source: "digits" -> "folder"' in message and "data.root: null" in message
    assert "nothing was run" in message and "snakemake --directory <folder>" in message
    check_sealed_data({**sealed_config, "seed": 7, "evaluation": {}}, seals)  # a seal's seed is its model's
    with pytest.raises(SealedTestError, match=r"data.digits.size: 16 -> 32"):
        check_sealed_data({**sealed_config, "data": {"source": "digits", "digits": {"size": 32}}, "evaluation": {}},
                          seals)
    check_sealed_data(other, {})  # no seal: nothing to protect
    # A retraining on appended data gives its reason (docs/retraining.md).
    check_sealed_data({**other, "evaluation": {"unseal_reason": "batch 2 appended"}}, seals)
