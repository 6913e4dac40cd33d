"""The stated projection model: ring-allreduce cost, load imbalance, overhead and their limiting cases."""

import pytest

from trkx_tf.config import load_config
from trkx_tf.errors import ConfigError
from trkx_tf.scaling.projection import (PAPER_EFFICIENCY, imbalance_factor, project_from_config, project_strong,
                                        ring_allreduce_s, target_step_compute_s)

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


# ------------------------------------------------------------------------ per-rank batch, imbalance, overhead
def test_imbalance_is_one_at_one_rank_and_for_equal_loads():
    assert imbalance_factor([3.0, 1.0, 2.0], 1) == 1.0
    assert imbalance_factor([5.0] * 7, 64) == 1.0


def test_imbalance_is_the_expected_maximum_of_n_draws_over_the_mean():
    # loads {1, 3}: the maximum of 2 draws is 3 unless both draws are 1 (probability 1/4): E = 2.5, mean 2
    assert imbalance_factor([1.0, 3.0], 2) == pytest.approx(1.25)
    # it grows with N towards max / mean = 1.5
    values = [imbalance_factor([1.0, 3.0], n) for n in RANKS]
    assert all(a < b for a, b in zip(values, values[1:])) and values[-1] == pytest.approx(1.5, abs=1e-12)


def test_bad_loads_are_named():
    for loads in ([], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(ConfigError, match="per-rank loads"):
            imbalance_factor(loads, 2)


def test_a_fixed_per_rank_batch_without_communication_or_imbalance_scales_perfectly():
    rows = project_strong(0.2, RANKS, gradient_bytes=0, latency_s=0.0, intra_node_bytes_s=1e9,
                          inter_node_bytes_s=1e9, ranks_per_node=4, batch="rank")
    assert [r["compute_s"] for r in rows] == pytest.approx([0.2] * len(RANKS))  # each rank: its own batch
    assert [r["efficiency"] for r in rows] == pytest.approx([1.0] * len(RANKS))
    assert [r["speedup"] for r in rows] == pytest.approx(RANKS)


def test_with_imbalance_alone_the_efficiency_is_its_inverse():
    loads = [40_000, 55_000, 60_000, 90_000]
    for batch in ("global", "rank"):
        rows = project_strong(1.0, RANKS, gradient_bytes=0, latency_s=0.0, intra_node_bytes_s=1e9,
                              inter_node_bytes_s=1e9, ranks_per_node=4, batch=batch, loads=loads)
        assert [r["efficiency"] for r in rows] == pytest.approx([1 / imbalance_factor(loads, n) for n in RANKS])


def test_the_fixed_overhead_applies_only_to_distributed_steps():
    rows = project_strong(0.1, [1, 2], gradient_bytes=0, latency_s=0.0, intra_node_bytes_s=1e9,
                          inter_node_bytes_s=1e9, ranks_per_node=4, batch="rank", step_overhead_s=0.01)
    assert rows[0]["efficiency"] == 1.0 and rows[1]["efficiency"] == pytest.approx(0.1 / 0.11)
    with pytest.raises(ConfigError, match="overhead must be >= 0"):
        project_strong(0.1, [1], gradient_bytes=0, latency_s=0.0, intra_node_bytes_s=1e9, inter_node_bytes_s=1e9,
                       ranks_per_node=4, step_overhead_s=-1.0)


def test_more_bandwidth_or_more_compute_per_step_never_lowers_the_efficiency():
    def e64(c, inter):
        return project_strong(c, [64], gradient_bytes=7e5, latency_s=1e-5, intra_node_bytes_s=1.5e11,
                              inter_node_bytes_s=inter, ranks_per_node=8, batch="rank")[0]["efficiency"]

    assert e64(0.1, 25e9) > e64(0.1, 12.5e9) and e64(1.0, 12.5e9) > e64(0.1, 12.5e9)


def test_the_stated_compute_wins_over_the_measured_one():
    p = load_config(None, ["scaling.projection.compute_scale=0.5"]).scaling.projection
    assert target_step_compute_s(2.0, p) == 1.0
    assert target_step_compute_s(2.0, p.model_copy(update={"step_compute_s": 0.165})) == 0.165
    with pytest.raises(ConfigError, match="step_compute_s or measure a 1-rank run"):
        target_step_compute_s(None, p)


def test_the_paper_reference_points():
    assert PAPER_EFFICIENCY[2] == 0.90 and PAPER_EFFICIENCY[8] == 0.75
    assert PAPER_EFFICIENCY[64] == pytest.approx(22 / 32)
