"""``trkx-train``: train the filter, the Interaction Network or the embedding on padded HDF5 graph shards.

One process: ``trkx-train --config configs/demo.yaml``. Horovod: ``horovodrun -np 8 trkx-train --config …``
(or ``mpirun``/``srun``; the backend is detected). tf.distribute: ``--set backend.name=tfdist`` with
``TF_CONFIG`` or inside ``srun``.
"""

import argparse

from trkx_tf.cli.common import add_config_args, command, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trkx-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, required=True)
    return parser


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)  # a config error is reported before TensorFlow is imported (seconds)
    from trkx_tf.train.session import train_from_config

    return train_from_config(cfg)


main = command(build_parser, run)
