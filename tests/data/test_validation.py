"""Validation of whole data sets: every bad input gets its documented outcome."""

import os
import shutil

import pandas as pd
import pytest
from PIL import Image

from conftest import BAD_FILES, make_folder, pattern, save, write_bad_file
from imgclf.core.config import validate_config
from imgclf.data.index import validate_source
from imgclf.core.errors import DataValidationError, ImgclfError
from imgclf.data.validation import raise_on_errors, render_markdown


def config(**sections):
    raw = {"data": {"source": "folder", "root": "unused"},
           "validation": {"min_images_per_class": 3}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return validate_config(raw)


def codes(result, severity=None):
    return {f.code for f in result.findings if severity is None or f.severity == severity}


def finding(result, code):
    (match,) = [f for f in result.findings if f.code == code]
    return match


def test_clean_folder_passes_with_an_index(folder):
    result = validate_source(config(), folder)
    assert not result.errors
    assert list(result.index["path"]) == sorted(result.index["path"])
    assert set(result.index["label"]) == {"cat", "dog", "fox"}
    assert len(result.index) == 36
    assert result.summary["classes"] == {"cat": 12, "dog": 12, "fox": 12}
    assert list(result.index.columns[:7]) == ["path", "sha256", "label", "width", "height", "mode", "format"]


@pytest.fixture
def bad_folder(folder):
    for kind in BAD_FILES:
        write_bad_file(folder / "cat" / kind, kind)
    return folder


def test_bad_files_fail_the_run_by_default_naming_each_file(bad_folder):
    result = validate_source(config(), bad_folder)
    assert set(BAD_FILES.values()) <= codes(result, "error")
    with pytest.raises(DataValidationError) as error:
        raise_on_errors(result, report_path="logs/data/validation_report.md")
    text = str(error.value)
    for name in BAD_FILES:
        assert f"cat/{name}" in text
    assert "validation.on_bad_file: drop" in text
    assert "logs/data/validation_report.md" in text


def test_bad_files_are_dropped_on_request(bad_folder):
    result = validate_source(config(validation={"on_bad_file": "drop"}), bad_folder)
    assert not result.errors
    assert set(BAD_FILES.values()) <= codes(result, "warning")
    assert len(result.index) == 36
    assert {d["path"] for d in result.dropped} == {f"cat/{name}" for name in BAD_FILES}
    assert "dropped" in render_markdown(result)


def test_cmyk_16bit_palette_and_exif_are_warnings(folder):
    save(pattern(50, 40, "CMYK"), folder / "cat" / "cmyk.jpg", format="JPEG")
    import numpy as np
    save(Image.fromarray((np.arange(1600, dtype=np.uint16).reshape(40, 40) * 40)), folder / "dog" / "deep.png")
    palette = pattern(51, 40).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    save(palette, folder / "fox" / "palette.png", transparency=0)
    exif = Image.Exif()
    exif[0x0112] = 6
    save(pattern(52, 40), folder / "fox" / "rotated.jpg", format="JPEG", exif=exif.tobytes())
    result = validate_source(config(), folder)
    assert not result.errors
    assert {"mode_cmyk", "high_bit_depth", "palette_transparency", "exif_orientation",
            "mixed_modes"} <= codes(result)
    assert finding(result, "mode_cmyk").files == ["cat/cmyk.jpg"]


def test_images_smaller_than_the_input_are_reported(folder):
    result = validate_source(config(data={"image_size": [64, 64]}), folder)
    assert finding(result, "smaller_than_input").count == 36
    assert "smaller_than_input" not in codes(validate_source(config(), folder))


def test_duplicate_across_classes_is_a_label_conflict(folder):
    shutil.copy(folder / "cat" / "cat_000.png", folder / "dog" / "copy.png")
    result = validate_source(config(), folder)
    conflict = finding(result, "label_conflict")
    assert conflict.severity == "error"
    assert conflict.files == ["cat/cat_000.png", "dog/copy.png"]
    dropped = validate_source(config(validation={"on_bad_file": "drop"}), folder)
    assert "cat/cat_000.png" not in set(dropped.index["path"])


def test_duplicate_and_near_duplicate_within_a_class_are_warnings(folder):
    shutil.copy(folder / "cat" / "cat_000.png", folder / "cat" / "copy.png")
    near = Image.open(folder / "dog" / "dog_000.png").resize((31, 31), Image.Resampling.BILINEAR)
    save(near, folder / "dog" / "near.png")
    result = validate_source(config(), folder)
    assert finding(result, "exact_duplicates").files == ["cat/cat_000.png", "cat/copy.png"]
    assert finding(result, "near_duplicates").files[0].startswith("dog/dog_000.png ~ dog/near.png")
    assert not result.errors


def test_empty_class_is_ignored_with_a_warning(folder):
    (folder / "empty").mkdir()
    result = validate_source(config(), folder)
    assert finding(result, "empty_class").files == ["empty/"]
    assert "empty" not in set(result.index["label"])
    assert not result.errors


def test_class_with_one_image_is_an_error(folder):
    save(pattern(70), folder / "owl" / "only.png")
    result = validate_source(config(), folder)
    too_small = finding(result, "class_too_small")
    assert too_small.severity == "error" and "'owl' (1)" in too_small.message
    assert "min_images_per_class" in too_small.hint


def test_single_class_is_an_error(tmp_path):
    root = make_folder(tmp_path / "one", {"cat": 5})
    assert "single_class" in codes(validate_source(config(), root), "error")


def test_imbalance_is_a_warning(tmp_path):
    root = make_folder(tmp_path / "im", {"big": 40, "small": 3})
    result = validate_source(config(validation={"max_imbalance_ratio": 5}), root)
    assert finding(result, "class_imbalance").details["imbalance_ratio"] == pytest.approx(40 / 3)


def test_non_utf8_file_name_is_a_bad_file(folder):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1, not UTF-8
    save(pattern(80), folder / "cat" / name)
    result = validate_source(config(), folder)
    bad = finding(result, "non_utf8_name")
    assert bad.severity == "error" and bad.files == ["cat/caf\\xe9.png"]
    dropped = validate_source(config(validation={"on_bad_file": "drop"}), folder)
    assert len(dropped.index) == 36
    dropped.index.to_csv(os.devnull)  # the index stays writable as UTF-8


def test_symlink_out_of_the_root_is_a_bad_file(folder, tmp_path):
    outside = save(pattern(81), tmp_path / "outside" / "secret.png")
    (folder / "cat" / "link.png").symlink_to(outside)
    (folder / "dog" / "linked_dir").symlink_to(outside.parent, target_is_directory=True)
    result = validate_source(config(), folder)
    escapes = finding(result, "path_escapes_root")
    assert escapes.files == ["cat/link.png", "dog/linked_dir/"]
    inside = folder / "fox" / "inner_link.png"
    inside.symlink_to(folder / "fox" / "fox_000.png")  # a link inside the root is fine
    assert "inner_link" not in str(finding(validate_source(config(), folder), "path_escapes_root").files)


def test_non_image_and_loose_files_are_ignored_with_warnings(folder):
    (folder / "cat" / "notes.txt").write_text("hello")
    (folder / "README.md").write_text("hello")
    (folder / "cat" / ".DS_Store").write_bytes(b"\0")
    result = validate_source(config(), folder)
    assert finding(result, "non_image_file").files == ["cat/notes.txt"]
    assert finding(result, "file_outside_class").files == ["README.md"]
    assert not result.errors


def test_missing_data_root_is_a_clear_error(tmp_path):
    with pytest.raises(ImgclfError, match="does not exist"):
        validate_source(config(), tmp_path / "nope")


def _metadata(folder, tmp_path, drop=(), extra=()):
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    rows = [{"file": p, "patient": f"P{i // 3}", "sex": "F" if i % 2 else "M"}
            for i, p in enumerate(paths) if p not in drop]
    rows += [{"file": p, "patient": "P999", "sex": "F"} for p in extra]
    path = tmp_path / "meta.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_metadata_joins_group_columns(folder, tmp_path):
    meta = _metadata(folder, tmp_path)
    result = validate_source(config(data={"group_columns": ["patient", "sex"]}), folder, metadata=meta)
    assert {"patient", "sex"} <= set(result.index.columns)
    assert result.index["patient"].notna().all()
    sizes = [f for f in result.findings if f.code == "group_sizes"]
    assert {f.details["column"] for f in sizes} == {"patient", "sex"}


def test_metadata_with_missing_and_extra_rows(folder, tmp_path):
    meta = _metadata(folder, tmp_path, drop=["cat/cat_000.png"], extra=["cat/ghost.png"])
    result = validate_source(config(), folder, metadata=meta)
    assert finding(result, "metadata_missing_row").severity == "warning"
    assert finding(result, "metadata_missing_row").files == ["cat/cat_000.png"]
    assert finding(result, "metadata_unknown_file").files == ["cat/ghost.png"]
    # When the split groups by a metadata column, a missing row is an error.
    grouped = validate_source(config(split={"group_column": "patient"}), folder, metadata=meta)
    assert finding(grouped, "metadata_missing_row").severity == "error"


def test_metadata_listing_a_file_twice_is_an_error(folder, tmp_path):
    meta = _metadata(folder, tmp_path, extra=["cat/cat_001.png"])
    with pytest.raises(ImgclfError, match="same file"):
        validate_source(config(), folder, metadata=meta)


def test_unknown_group_column_is_an_error(folder, tmp_path):
    meta = _metadata(folder, tmp_path)
    with pytest.raises(ImgclfError, match="'site'"):
        validate_source(config(data={"group_columns": ["site"]}), folder, metadata=meta)
    with pytest.raises(ImgclfError, match="split.group_column 'patient'"):
        validate_source(config(split={"group_column": "patient"}), folder)


def test_manifest_source(folder, tmp_path):
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    table = pd.DataFrame({"file": paths, "y": [p.split("/")[0] for p in paths],
                          "site": ["A", "B"] * (len(paths) // 2)})
    table.loc[len(table)] = ["cat/missing.png", "cat", "A"]
    table.loc[len(table)] = ["../outside.png", "cat", "A"]
    manifest = tmp_path / "labels.csv"
    table.to_csv(manifest, index=False)
    cfg = config(data={"source": "manifest", "manifest": str(manifest), "path_column": "file",
                       "label_column": "y"}, validation={"on_bad_file": "drop"})
    result = validate_source(cfg, folder, manifest=manifest)
    assert len(result.index) == 36 and "site" in result.index.columns
    assert finding(result, "missing_file").files == ["cat/missing.png"]
    assert finding(result, "path_escapes_root").files == ["../outside.png"]
    bad = config(data={"source": "manifest", "manifest": str(manifest), "path_column": "file",
                       "label_column": "nope"})
    with pytest.raises(ImgclfError, match="no column 'nope'"):
        validate_source(bad, folder, manifest=manifest)


def test_parallel_inspection_gives_the_same_index(tmp_path):
    root = make_folder(tmp_path / "many", {"a": 130, "b": 130})
    serial = validate_source(config(), root, workers=1)
    parallel = validate_source(config(), root, workers=2)
    pd.testing.assert_frame_equal(serial.index, parallel.index)


def test_16_bit_images_get_distinct_hashes(tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        for i in range(6):
            blocks = rng.integers(0, 65535, size=(4, 4)).astype(np.uint16)
            image = Image.fromarray(blocks).resize((32, 32), Image.Resampling.NEAREST)
            save(image, tmp_path / "deep" / label / f"{i}.png")
    result = validate_source(config(), tmp_path / "deep")
    assert result.index["mode"].str.startswith("I").all()
    assert result.index["phash"].nunique() == 12
    assert "near_duplicates" not in codes(result)


def test_manifest_edge_cases(folder, tmp_path):
    manifest = tmp_path / "m.csv"
    cfg = config(data={"source": "manifest", "manifest": str(manifest)})
    manifest.write_text("path,label\n")
    with pytest.raises(ImgclfError, match="lists no image"):
        validate_source(cfg, folder, manifest=manifest)
    manifest.write_text("path,label\ncat/cat_000.png,cat\n,dog\n")
    with pytest.raises(ImgclfError, match="1 row\\(s\\) have no path \\(lines 3\\)"):
        validate_source(cfg, folder, manifest=manifest)
    manifest.write_text("path,label\ncat/cat_000.png,cat\n./cat/cat_000.png,cat\n")
    with pytest.raises(ImgclfError, match="name the same image"):
        validate_source(cfg, folder, manifest=manifest)
    # Windows separators, a semicolon-separated file and padded labels are understood.
    rows = [f"{p.parent.name}\\{p.name}; {p.parent.name} " for p in sorted(folder.rglob("*.png"))]
    manifest.write_text("path;label\n" + "\n".join(rows) + "\n")
    result = validate_source(cfg, folder, manifest=manifest)
    assert len(result.index) == 36 and set(result.index["label"]) == {"cat", "dog", "fox"}
    # Every row missing: reported as missing files, not a crash.
    manifest.write_text("path,label\nnope/1.png,cat\nnope/2.png,dog\n")
    result = validate_source(cfg, folder, manifest=manifest)
    assert finding(result, "missing_file").count == 2 and "no_images" in codes(result, "error")


def test_user_columns_named_like_index_columns(folder, tmp_path):
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"file": paths, "format": "x", "site": "A"}).to_csv(meta, index=False)
    result = validate_source(config(), folder, metadata=meta)  # all columns: 'format' left out
    assert "site" in result.index.columns and set(result.index["format"]) == {"PNG"}
    with pytest.raises(ImgclfError, match="'format', which the index computes itself"):
        validate_source(config(data={"group_columns": ["format"]}), folder, metadata=meta)


def test_metadata_file_inside_the_root_is_not_a_stray_file(folder):
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    meta = folder / "metadata.csv"
    pd.DataFrame({"file": paths, "site": "A"}).to_csv(meta, index=False)
    result = validate_source(config(), folder, metadata=meta)
    assert "file_outside_class" not in codes(result)


def test_animated_gif_and_mpo_are_accepted_with_a_note(folder):
    frames = [pattern(90 + i, 40) for i in range(3)]
    frames[0].save(folder / "cat" / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(folder / "dog" / "camera.jpg", format="MPO", save_all=True, append_images=frames[1:2])
    result = validate_source(config(), folder)
    assert finding(result, "animated").files == ["cat/anim.gif", "dog/camera.jpg"]
    assert set(result.index.loc[result.index["path"] == "dog/camera.jpg", "format"]) == {"MPO"}
    assert "extension_mismatch" not in codes(result) and not result.errors


def test_the_validation_job_keeps_its_report_when_errors_stop_it(tmp_path):
    import logging

    from imgclf.data import validate_data

    root = make_folder(tmp_path / "images", {"cat": 12, "dog": 12})
    report = tmp_path / "logs" / "validation_report.md"
    log = logging.getLogger("test.data")
    result = validate_data(config(data={"root": str(root)}), root, None, None, 1, report, log)
    assert list(result) == ["validation_json", "validation_md", "index"]  # the index last
    assert len(result["index"]) == 24 and result["validation_md"] == report.read_text()
    write_bad_file(root / "dog" / "broken.jpg", "truncated.jpg")
    with pytest.raises(DataValidationError, match="dog/broken.jpg") as error:
        validate_data(config(data={"root": str(root)}), root, None, None, 1, report, log)
    assert str(report) in str(error.value) and "dog/broken.jpg" in report.read_text()
