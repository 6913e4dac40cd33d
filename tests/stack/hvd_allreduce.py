"""Run under horovodrun: every rank allreduces (rank + 1) and a vector; prints one JSON line per rank."""

import json
import sys

import horovod.tensorflow as hvd
import tensorflow as tf

hvd.init()
total = hvd.allreduce(tf.constant(float(hvd.rank() + 1)), op=hvd.Sum)
vector = hvd.allreduce(tf.fill([4], float(hvd.rank())), op=hvd.Average)
print(json.dumps({
    "rank": hvd.rank(), "size": hvd.size(), "sum": float(total), "avg": vector.numpy().tolist(),
    "controller": "mpi" if hvd.mpi_enabled() else "gloo" if hvd.gloo_enabled() else "?",
}), flush=True)
sys.exit(0)
