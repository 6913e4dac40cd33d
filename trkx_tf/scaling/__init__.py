"""Scaling studies: the sweep harness, its records, the projection model and the report.

- :mod:`trkx_tf.scaling.harness`: run ``trkx-train`` at N = 1, 2, 4, ... on a fixed workload (``run_sweep``);
- :mod:`trkx_tf.scaling.launchers`: the command lines per launcher (horovodrun, mpirun, srun, sbatch, TF_CONFIG);
- :mod:`trkx_tf.scaling.records`: run records, summary rows and the efficiency arithmetic, CSV/JSON files;
- :mod:`trkx_tf.scaling.projection`: the stated compute + ring-allreduce model for more ranks;
- :mod:`trkx_tf.scaling.report`: markdown table and PNG plots;
- :mod:`trkx_tf.scaling.environment`: versions, host, CPUs, interconnect.
"""
