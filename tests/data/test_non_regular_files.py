"""Non-regular files where images should be (a FIFO named pipe.png...): reported, never opened.

Opening a FIFO without a writer blocks forever, so every check runs under a deadline
(:func:`within`): a regression fails the test instead of hanging the suite.
"""

import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_folder, pattern, save
from imgclf.core.config import validate_config
from imgclf.core.errors import DataValidationError, ImgclfError
from imgclf.data.imagefile import InspectOptions, inspect_image
from imgclf.data.index import validate_source
from imgclf.data.sources import manifest_fingerprint
from imgclf.data.validation import raise_on_errors
from imgclf.monitor.batches import inspect_batch, list_batch
from imgclf.data.validation import ValidationOptions

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")

DEADLINE_S = 30.0


def within(fifos, call, *args, **kwargs):
    """``call(*args, **kwargs)``, failing the test if it has not returned after DEADLINE_S.

    On a timeout each FIFO is opened for writing and closed, so that a reader blocked on it
    gets an end of file and the worker thread ends.
    """
    outcome = {}

    def run():
        try:
            outcome["value"] = call(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    if worker.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        worker.join(5)
        pytest.fail(f"{getattr(call, '__name__', call)} did not finish within {DEADLINE_S:g} s: "
                    "a non-regular file was opened")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def config(**sections):
    raw = {"data": {"source": "folder", "root": "unused"}, "validation": {"min_images_per_class": 3}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return validate_config(raw)


def finding(result, code):
    (match,) = [f for f in result.findings if f.code == code]
    return match


@pytest.fixture
def fifo_folder(folder):
    """The three-class folder with a FIFO named ``cat/pipe.png`` and a symlink to a good image."""
    os.mkfifo(folder / "cat" / "pipe.png")
    target = save(pattern(500), folder / ".store" / "extra.png")  # hidden: not listed itself
    os.symlink(target, folder / "cat" / "linked.png")
    return folder


def test_a_fifo_in_a_class_folder_fails_validation_quickly_naming_it(fifo_folder):
    result = within([fifo_folder / "cat" / "pipe.png"], validate_source, config(), fifo_folder)
    bad = finding(result, "not_a_regular_file")
    assert bad.severity == "error" and bad.files == ["cat/pipe.png"]
    assert "FIFO" in bad.details["reasons"]["cat/pipe.png"]
    with pytest.raises(DataValidationError) as error:
        raise_on_errors(result)
    text = str(error.value)
    assert "cat/pipe.png" in text and "not regular files" in text and "remove them" in text
    assert "validation.on_bad_file: drop" in text


def test_a_fifo_is_dropped_on_request_and_a_symlinked_image_still_counts(fifo_folder):
    cfg = config(validation={"on_bad_file": "drop"})
    result = within([fifo_folder / "cat" / "pipe.png"], validate_source, cfg, fifo_folder)
    assert not result.errors
    assert finding(result, "not_a_regular_file").severity == "warning"
    assert [(d["path"], d["problem"]) for d in result.dropped] == [("cat/pipe.png", "not_a_regular_file")]
    assert "cat/linked.png" in set(result.index["path"])  # a symlink to an image is an image
    assert len(result.index) == 37


def test_inspect_image_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    record = within([fifo], inspect_image, str(fifo), InspectOptions(max_pixels=10**8, min_side=8))
    assert record["problem"] == "not_a_regular_file"
    assert str(fifo) in record["problem_detail"] and "FIFO" in record["problem_detail"]
    link = tmp_path / "link.png"
    os.symlink(fifo, link)  # a link to a FIFO is a FIFO
    record = within([fifo], inspect_image, str(link), InspectOptions(max_pixels=10**8, min_side=8))
    assert record["problem"] == "not_a_regular_file"


@pytest.mark.parametrize("on_bad_file", ["fail", "drop"])
def test_a_manifest_row_naming_a_fifo_or_a_folder_is_a_bad_file(tmp_path, on_bad_file):
    root = make_folder(tmp_path / "images", {"cat": 4, "dog": 4})
    os.mkfifo(root / "cat" / "pipe.png")
    (root / "dog" / "folder.png").mkdir()
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*_*.png"))
    rows = paths + ["cat/pipe.png", "dog/folder.png"]
    manifest = tmp_path / "labels.csv"
    pd.DataFrame({"path": rows, "label": [p.split("/")[0] for p in rows]}).to_csv(manifest, index=False)
    cfg = config(data={"source": "manifest", "manifest": str(manifest)}, validation={"on_bad_file": on_bad_file})
    result = within([root / "cat" / "pipe.png"], validate_source, cfg, root, manifest=manifest)
    bad = finding(result, "not_a_regular_file")
    assert bad.files == ["cat/pipe.png", "dog/folder.png"]
    assert bad.severity == ("error" if on_bad_file == "fail" else "warning")
    assert "missing_file" not in {f.code for f in result.findings}
    assert len(result.index) == 8


def test_a_manifest_that_is_a_fifo_is_refused_without_reading_it(tmp_path):
    root = make_folder(tmp_path / "images", {"cat": 4, "dog": 4})
    manifest = tmp_path / "labels.csv"
    os.mkfifo(manifest)
    cfg = config(data={"source": "manifest", "manifest": str(manifest)})
    with pytest.raises(ImgclfError, match="FIFO.*not a regular file") as error:
        within([manifest], validate_source, cfg, root, manifest=manifest)
    assert "data.manifest" in str(error.value)
    within([manifest], manifest_fingerprint, manifest, root, "path")


@pytest.mark.parametrize("on_bad_file", ["fail", "drop"])
def test_a_fifo_in_a_monitored_batch_is_a_bad_file(tmp_path, on_bad_file):
    flat = tmp_path / "flat"
    for i in range(3):
        save(pattern(i), flat / f"{i}.png")
    os.mkfifo(flat / "pipe.png")
    labelled = make_folder(tmp_path / "labelled", {"a": 2, "b": 2})
    os.mkfifo(labelled / "a" / "pipe.jpg")
    fifos = [flat / "pipe.png", labelled / "a" / "pipe.jpg"]
    options = ValidationOptions(on_bad_file=on_bad_file)
    for root, name, usable in ((flat, "pipe.png", 3), (labelled, "a/pipe.jpg", 4)):
        batch = within(fifos, list_batch, "new", {"path": str(root)})
        if on_bad_file == "fail":
            with pytest.raises(DataValidationError) as error:
                within(fifos, inspect_batch, batch, options)
            assert name in str(error.value) and "not regular files" in str(error.value)
        else:
            images, dropped = within(fifos, inspect_batch, batch, options)
            assert len(images) == usable
            assert [(d["path"], d["problem"]) for d in dropped] == [(name, "not_a_regular_file")]


def test_a_monitored_batch_path_that_is_a_fifo_is_a_clear_error(tmp_path):
    fifo = tmp_path / "batch.csv"
    os.mkfifo(fifo)
    with pytest.raises(ImgclfError, match="FIFO.*neither a folder of images nor a CSV manifest"):
        within([fifo], list_batch, "new", {"path": str(fifo)})


def test_training_refuses_a_manifest_image_that_became_a_fifo(tmp_path):
    from imgclf.training.inputs import check_files

    root = tmp_path / "images"
    save(pattern(0), root / "a" / "0.png")
    table = pd.DataFrame({"path": ["a/0.png", "a/1.png"], "sha256": ["0" * 64, "1" * 64]})
    os.mkfifo(root / "a" / "1.png")
    with pytest.raises(ImgclfError, match=r"a/1.png \(no longer a regular file: not opened\)"):
        within([root / "a" / "1.png"], check_files, table, root, Path("train.csv"))
