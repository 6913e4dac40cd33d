"""trkx-tf: distributed TensorFlow training of the Exa.TrkX tracking pipeline on HPC clusters."""

import os as _os

__version__ = "0.1.0"

#: The XLA flag that picks XLA:CPU's runtime. The fused kernels of the models (trkx_tf.models.kernels) run faster on
#: the legacy runtime than on the thunk runtime TensorFlow 2.18 uses by default (the legacy one can split a large
#: element-wise kernel over the cores): the IN trains ~5 % (float32) and ~12 % (bfloat16) faster relative to
#: graph_nets (benchmarks/in_throughput.py --xla-cpu-runtime thunk|legacy). It only affects XLA on CPUs.
XLA_CPU_RUNTIME_FLAG = "--xla_cpu_use_thunk_runtime"


def _prefer_legacy_xla_cpu_runtime() -> None:
    """Adds ``--xla_cpu_use_thunk_runtime=false`` to ``XLA_FLAGS`` unless the flag is already set there (the
    user's choice wins). XLA reads its flags once, at its first use, so this runs before TensorFlow is used."""
    flags = _os.environ.get("XLA_FLAGS", "")
    if XLA_CPU_RUNTIME_FLAG not in flags:
        _os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_RUNTIME_FLAG}=false".strip()


_prefer_legacy_xla_cpu_runtime()
