"""trkx-tf: distributed TensorFlow training of the Exa.TrkX tracking pipeline on HPC clusters.

Exact versions live in constraints.txt; scripts/setup.sh (``make setup``) installs them, builds Horovod from
source with TensorFlow, Gloo and MPI, and installs this package.
"""

from setuptools import find_packages, setup

CONSOLE_SCRIPTS = [
    "trkx-info = trkx_tf.cli.info:main",
    "trkx-simulate = trkx_tf.cli.simulate:main",
    "trkx-build = trkx_tf.cli.build:main",
    "trkx-train = trkx_tf.cli.train:main",
    "trkx-scaling = trkx_tf.cli.scaling:main",
    "trkx-infer = trkx_tf.cli.infer:main",
    "trkx-eval = trkx_tf.cli.eval:main",
    "trkx-pipeline = trkx_tf.cli.pipeline:main",
    "trkx-hpo = trkx_tf.cli.hpo:main",
    "trkx-export = trkx_tf.cli.export:main",
    "trkx-study = trkx_tf.cli.study:main",
    "trkx-release = trkx_tf.cli.release:main",
    "trkx-tracker = trkx_tf.cli.tracker:main",
]

setup(
    name="trkx-tf",
    version="0.1.0",
    description="Distributed TensorFlow (Horovod, tf.distribute) training of Exa.TrkX tracking GNNs",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["trkx_tf", "trkx_tf.*"]),
    package_data={"trkx_tf.models": ["native/*.cc"]},  # compiled on first use (trkx_tf/models/native.py)
    install_requires=[
        # tensorflow-cpu here; tensorflow[and-cuda]==2.18.1 on GPU clusters (either satisfies the import)
        "dm-sonnet==2.0.2",
        "graph-nets==1.1.0",
        "dm-tree",
        "numpy>=1.26,<2.1",
        "scipy",
        "numba",
        "threadpoolctl",
        "pandas",
        "h5py",
        "mpi4py",
        "pyyaml",
        "pydantic>=2",
        "tqdm",
        "matplotlib",
        "scikit-learn",
        "optuna",
        "tensorboard~=2.18.0",
        "horovod==0.28.1",
    ],
    extras_require={"test": ["pytest", "pytest-timeout", "hypothesis"]},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
