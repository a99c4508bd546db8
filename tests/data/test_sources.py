"""Reading the configured source cheaply at load time: the classes."""

from conftest import make_folder
from imgclf.data.sources import source_class_names


def test_class_names_are_read_from_every_source(tmp_path):
    root = make_folder(tmp_path / "images", {"cat": 1, "dog": 1})
    (root / ".hidden").mkdir()
    assert source_class_names({"source": "folder"}, root) == ["cat", "dog"]
    assert source_class_names({"source": "digits"}, "") == [str(d) for d in range(10)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,dx\na.png, mel\nb.png,nv\nc.png,mel\n")
    data = {"source": "manifest", "manifest": str(manifest), "label_column": "dx"}
    assert source_class_names(data, tmp_path) == ["mel", "nv"]
    assert source_class_names({**data, "label_column": "nope"}, tmp_path) is None
    assert source_class_names({"source": "folder"}, tmp_path / "absent") is None
