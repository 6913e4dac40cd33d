"""Hyper-parameter optimisation of one training stage with Optuna (``trkx-hpo``), see docs/hpo.md.

A study tunes whatever stage its base config trains (``train.model``: the filter on its shards, or the GNN on the
shards of a fixed filter). Every trial is a real ``trkx-train`` subprocess, optionally under a launcher such as
``horovodrun -np 4``, with ``--set`` overrides made from the sampled parameters and a run folder of its own. The
worker follows the trial's ``metrics.jsonl``, reports the objective of every epoch to Optuna and stops the trial's
processes when the pruner says so. Many workers (processes, SLURM array tasks) share one study through Optuna's
journal-file storage (or SQLite).

Modules: :mod:`~trkx_tf.hpo.space` (the study file: search space, objective, sampler, pruner; validated against the
config schema), :mod:`~trkx_tf.hpo.trial` (one trial: the subprocess and the metrics it writes),
:mod:`~trkx_tf.hpo.study` (storage, workers, the trial budget), :mod:`~trkx_tf.hpo.report` (tables, best config,
importances, plots). Nothing here imports TensorFlow.
"""
