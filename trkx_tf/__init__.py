"""trkx-tf: distributed TensorFlow training of the Exa.TrkX tracking pipeline on HPC clusters.

Importing this package, or any module in it, changes nothing: the console scripts choose XLA:CPU's runtime
(:func:`trkx_tf.placement.prefer_legacy_xla_cpu_runtime`) when they start.
"""

__version__ = "0.1.0"
