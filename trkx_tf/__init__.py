"""trkx-tf: distributed TensorFlow training of the Exa.TrkX tracking pipeline on HPC clusters."""

__version__ = "0.1.0"
