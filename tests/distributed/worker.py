"""One rank of a distributed-correctness run; started by horovodrun, mpirun, or as a tf.distribute worker.

Usage: python worker.py SPEC_JSON, where SPEC_JSON holds ``backend``, ``shards``, ``out``, ``graphs_per_step``,
``epochs``, ``model`` and optional ``uneven`` (every rank gets ``rank + 2`` in-memory batches instead of shards),
``overrides`` (more ``--set`` strings, e.g. ``model.gnn.kind=attention``) and ``local_replicas`` (tf.distribute
replicas in this process; on a CPU, logical devices).
Each rank writes ``<out>/rank<R>.npz`` with its trained variables, its epoch losses and the agreed step count;
with several local replicas also every replica's copy of every variable (``replica<i>_var<j>``).
"""

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from trkx_tf.config import load_config
from trkx_tf.graphs.synthetic import random_graph
from trkx_tf.models.registry import build_model
from trkx_tf.train.distributed import make_backend
from trkx_tf.train.loop import InMemorySource, fit
from trkx_tf.train.optim import Adam
from trkx_tf.train.session import open_sources
from trkx_tf.train.tasks import EdgeTask

spec = json.loads(sys.argv[1])
backend = make_backend(spec["backend"], spec.get("local_replicas", 0))
cfg = load_config(None, ["model.gnn.hidden=16", "model.gnn.steps=2", "model.filter.hidden=16",
                         f"data.shards_dir={spec['shards']}", f"train.graphs_per_step={spec['graphs_per_step']}",
                         "run.seed=0"] + spec.get("overrides", []))
if spec.get("uneven"):
    source = InMemorySource([random_graph(40, 120, 3, seed=i) for i in range(backend.rank + 2)], shuffle=False)
else:
    source, _ = open_sources(cfg, backend.rank, backend.size, backend.local_replicas)
tf.random.set_seed(0)
with backend.scope():
    model = build_model(cfg.model, spec["model"])
    optimizer = Adam(1e-3)
result = fit(model, EdgeTask(), optimizer, source, backend=backend, epochs=spec["epochs"])
arrays = {f"var{i}": np.asarray(v.numpy()) for i, v in enumerate(model.trainable_variables)}
if backend.local_replicas > 1:
    for i, v in enumerate(model.trainable_variables):
        for r, component in enumerate(backend.strategy.experimental_local_results(v)):
            arrays[f"replica{r}_var{i}"] = np.asarray(component.numpy())
arrays["epoch_losses"] = np.array([h["loss"] for h in result.history])
arrays["steps"] = np.array(result.steps)
out = Path(spec["out"])
out.mkdir(parents=True, exist_ok=True)
np.savez(out / f"rank{backend.rank}.npz", **arrays)
print(json.dumps({"rank": backend.rank, "size": backend.size, "steps": result.steps}), flush=True)
