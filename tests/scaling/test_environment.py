"""The environment record: interconnect detection from sysfs, the fallback, NUL-free strings."""

from trkx_tf.scaling import environment


def test_infiniband_ports_are_read_from_sysfs(tmp_path):
    port = tmp_path / "mlx5_0" / "ports" / "1"
    port.mkdir(parents=True)
    (port / "rate").write_text("100 Gb/sec (4X EDR)\n")
    assert environment.interconnect(tmp_path) == "infiniband: mlx5_0 port 1 100 Gb/sec (4X EDR)"


def test_without_infiniband_a_single_host_is_loopback_shared_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(environment.shutil, "which", lambda name: None)
    assert environment.interconnect(tmp_path / "none") == "loopback/shared-memory"


def test_strings_lose_the_nul_padding_of_mpi_library_versions():
    assert environment._clean({"mpi": "Open MPI v4.1.4\x00", "devices": ["CPU:0\x00"], "n": 2}) == {
        "mpi": "Open MPI v4.1.4", "devices": ["CPU:0"], "n": 2}


def test_the_record_holds_the_placement_the_thread_variables_and_the_load(monkeypatch):
    import trkx_tf.info

    monkeypatch.setattr(trkx_tf.info, "collect", lambda: {"tensorflow": "2.18.1"})
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    env = environment.collect_environment({"threads": 1, "pin_cores": True})
    assert env["placement"] == {"threads": 1, "pin_cores": True, "env": {"OMP_NUM_THREADS": "1"}}
    assert len(env["load_average"]) == 3 and all(x >= 0 for x in env["load_average"])
    assert env["cores_allowed"] and env["stack"] == {"tensorflow": "2.18.1"}


def test_the_commit_is_dirty_only_for_changes_of_the_code_itself(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "study.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    clean = environment.code_commit(tmp_path / "pkg")
    assert len(clean) == 12 and "+" not in clean
    (tmp_path / "study.md").unlink()  # a study rewriting its own tracked records
    assert environment.code_commit(tmp_path / "pkg") == clean
    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")
    assert environment.code_commit(tmp_path / "pkg") == clean + "+dirty"
