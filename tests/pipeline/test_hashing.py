"""Content hashes of files and folders: patterns, hidden files, the stat cache."""

import os

from trkx_tf.pipeline.hashing import PathSpec, exists, hash_spec


def _tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "event000000001-hits.csv").write_text("1")
    (root / "event000000002-hits.csv").write_text("2")
    (root / "sub" / "x.h5").write_text("x")
    (root / ".tmp-build-12").write_text("a writer's temporary file")


def test_folder_hash_follows_content_not_hidden_files(tmp_path):
    _tree(tmp_path)
    h = hash_spec(PathSpec(str(tmp_path)))
    assert (h.files, h.bytes) == (3, 3)
    (tmp_path / ".trkx-build.lock").write_text("123")
    assert hash_spec(PathSpec(str(tmp_path))) == h
    (tmp_path / "sub" / "x.h5").write_text("y")
    assert hash_spec(PathSpec(str(tmp_path))).sha256 != h.sha256
    os.rename(tmp_path / "sub" / "x.h5", tmp_path / "sub" / "z.h5")  # names count too
    (tmp_path / "sub" / "z.h5").write_text("x")
    assert hash_spec(PathSpec(str(tmp_path))).sha256 != h.sha256


def test_patterns_select_events(tmp_path):
    _tree(tmp_path)
    one = PathSpec(str(tmp_path), ("event000000001-*",))
    assert hash_spec(one).files == 1 and one.key() == f"{tmp_path}[event000000001-*]"
    before = hash_spec(one)
    (tmp_path / "event000000002-hits.csv").write_text("changed")
    assert hash_spec(one) == before  # another event's change does not touch this set
    assert not exists(PathSpec(str(tmp_path), ("event000000009-*",))) and exists(one)
    assert not exists(PathSpec(str(tmp_path / "nothing")))


def test_stat_cache_skips_unchanged_files(tmp_path):
    _tree(tmp_path)
    cache = {}
    first = hash_spec(PathSpec(str(tmp_path)), cache)
    assert len(cache) == 3
    path = tmp_path / "sub" / "x.h5"
    st = path.stat()
    path.write_text("q")  # same size; put the modification time back: the cache is trusted (make's rule)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert hash_spec(PathSpec(str(tmp_path)), cache) == first
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))  # a newer time: read again
    assert hash_spec(PathSpec(str(tmp_path)), cache).sha256 != first.sha256
