"""The stated projection model: ring-allreduce cost and its limiting cases."""

import pytest

from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError
from trkx_tf.scaling.projection import project_from_config, project_strong, ring_allreduce_s

RANKS = [1, 2, 4, 8, 16, 32, 64]


def test_zero_communication_gives_perfect_efficiency_at_every_rank_count():
    rows = project_strong(2.0, RANKS, gradient_bytes=0, latency_s=0.0, intra_node_bytes_s=1e9,
                          inter_node_bytes_s=1e9, ranks_per_node=4)
    assert [r["efficiency"] for r in rows] == pytest.approx([1.0] * len(RANKS))
    assert [r["step_time_s"] for r in rows] == pytest.approx([2.0 / n for n in RANKS])


def test_fully_overlapped_communication_also_gives_perfect_efficiency():
    rows = project_strong(1.0, RANKS, gradient_bytes=1e8, latency_s=1e-5, intra_node_bytes_s=1e9,
                          inter_node_bytes_s=1e8, ranks_per_node=4, overlap=1.0)
    assert [r["efficiency"] for r in rows] == pytest.approx([1.0] * len(RANKS))


def test_ring_allreduce_cost():
    assert ring_allreduce_s(1, 1e9, 1.0, 1.0) == 0.0
    # 2(N-1) hops of latency + 2(N-1)/N of the buffer over the link
    assert ring_allreduce_s(4, 4e6, 1e-6, 1e9) == pytest.approx(6e-6 + 1.5 * 4e-3)
    assert ring_allreduce_s(2, 1e6, 0.0, 1e9) == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="bandwidth must be > 0"):
        ring_allreduce_s(2, 1.0, 0.0, 0.0)


def test_efficiency_falls_with_ranks_and_drops_where_the_ring_leaves_the_node():
    rows = project_strong(0.1, RANKS, gradient_bytes=4e6, latency_s=5e-6, intra_node_bytes_s=1e11,
                          inter_node_bytes_s=1e10, ranks_per_node=4)
    eff = [r["efficiency"] for r in rows]
    assert eff[0] == 1.0 and all(a > b for a, b in zip(eff, eff[1:]))
    four, eight = rows[2], rows[3]
    assert eight["allreduce_s"] > 5 * four["allreduce_s"]  # 10x slower link beyond one node
    n = 2  # E(N) = c / (N (c/N + A)) by hand
    a = 2 * (n - 1) * 5e-6 + 2 * (n - 1) / n * 4e6 / 1e11
    assert rows[1]["efficiency"] == pytest.approx(0.1 / (n * (0.1 / n + a)))


def test_projection_from_the_config_section_uses_its_units():
    p = load_config(None, ["scaling.projection.gradient_bytes=1000000", "scaling.projection.latency_us=0",
                           "scaling.projection.intra_node_gb_s=1", "scaling.projection.compute_scale=0.5",
                           "scaling.projection.ranks=[1,2]"]).scaling.projection
    rows = project_from_config(2.0, p)
    assert rows[1]["compute_s"] == pytest.approx(0.5)  # 2 s x 0.5 / 2 ranks
    assert rows[1]["allreduce_s"] == pytest.approx(1e6 / 1e9)  # 2(N-1)/N = 1 at N=2


def test_bad_model_inputs_are_named():
    with pytest.raises(ConfigError, match="per-step compute must be > 0"):
        project_strong(0.0, [1], gradient_bytes=0, latency_s=0, intra_node_bytes_s=1, inter_node_bytes_s=1,
                       ranks_per_node=1)
    with pytest.raises(ConfigError, match="overlap must be in"):
        project_strong(1.0, [1], gradient_bytes=0, latency_s=0, intra_node_bytes_s=1, inter_node_bytes_s=1,
                       ranks_per_node=1, overlap=1.5)
