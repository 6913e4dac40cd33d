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


def test_signals_deferred_delivers_after_the_block():
    """A SIGTERM inside the block runs its handler only when the block ends (atomic_path's mkstemp uses it, so a
    signal never leaves a temporary file nobody knows the name of)."""
    import os
    import signal

    from trkx_tf.files import signals_deferred

    seen = []

    def handler(signum, frame):
        seen.append(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == []  # held back
        assert seen == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, old)
