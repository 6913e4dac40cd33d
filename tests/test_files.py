import pytest

from trkx_tf.files import write_text_atomic


def test_write_text_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    with pytest.raises(OSError):
        write_text_atomic(tmp_path / "missing" / "b.json", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
