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
