"""The work of a train step is linear in the graphs per step, checked on the traced step without timing anything.

Issue 25: a step of 2 graphs was reported at 3-4x a step of 1 graph. Whatever the cause, a step of G graphs must
trace to the same program as a step of 1 graph, with every tensor at most G times as large: no per-graph unrolled
ops, no tensor that grows faster than the batch (an [E, E] or [E, G] intermediate, a padding budget that depends on
G), and one trace per bucket shape. ``benchmarks/train_batch_scaling.py`` measures the time.
"""

import numpy as np
import pytest

from tests.train.conftest import toy_batch
from trkx_tf.graphs import synthetic
from trkx_tf.models.filter import EdgeFilter
from trkx_tf.models.interaction import InteractionNetwork
from trkx_tf.train.backend import SingleBackend
from trkx_tf.train.optim import Adam
from trkx_tf.train.steps import StepFunctions
from trkx_tf.train.tasks import EdgeTask

BUCKET = (140, 420)


def _batch(graphs: int) -> dict:
    """G toy graphs of one bucket, concatenated as the shard reader does."""
    batch = synthetic.concat_batches([toy_batch(seed, bucket=BUCKET) for seed in range(graphs)])
    assert batch["nodes"].shape[0] == graphs * BUCKET[0] and batch["senders"].shape[0] == graphs * BUCKET[1]
    return batch


def _program(model, graphs: int):
    """(ops by type, static elements of every op output, outputs of unknown size) of the traced train step."""
    steps = StepFunctions(model, EdgeTask(), Adam(1e-3), SingleBackend())
    batch = _batch(graphs)
    steps.build(batch)
    steps.train(batch)
    steps.train(batch)
    assert steps.trace_counts["train"] == 1  # one trace per bucket shape, whatever G is
    fn = steps._function("train", batch)
    graph = fn.get_concrete_function().graph
    ops, elements, unknown = {}, 0, 0
    for op in graph.get_operations():
        if op.type not in ("Const", "Fill"):  # TensorFlow folds small zeros_like/ones_like into constants
            ops[op.type] = ops.get(op.type, 0) + 1
        for out in op.outputs:
            shape = out.shape
            if shape.rank is None or not shape.is_fully_defined():
                unknown += 1
            else:
                elements += int(np.prod(shape.as_list(), dtype=np.int64))
    return ops, elements, unknown


@pytest.mark.parametrize("make_model", [
    lambda: InteractionNetwork(hidden=16, layers=2, steps=3),
    lambda: EdgeFilter(hidden=16, layers=2),
], ids=["interaction", "filter"])
def test_a_step_of_g_graphs_is_the_same_program_with_at_most_g_times_the_elements(make_model):
    ops1, elements1, unknown1 = _program(make_model(), 1)
    for g in (2, 4):
        ops, elements, unknown = _program(make_model(), g)
        assert ops == ops1, f"G={g}: the traced step has other ops than at G=1 (per-graph work unrolled?)"
        assert unknown == unknown1
        # weights and scalars do not grow with G, so the ratio is below G; above G a tensor grows faster than
        # the batch
        assert elements <= g * elements1, f"G={g}: {elements} elements > {g} x {elements1}"
        assert elements > 0.5 * g * elements1  # the batch tensors did grow (the check is not empty)
