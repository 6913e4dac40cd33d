"""``trkx-pipeline``: one command from nothing to evaluated tracks, with cached, resumable stages.

The stages (:mod:`trkx_tf.pipeline.stages`): simulate the training events (or link them from existing folders,
``pipeline.events``: the TrackML challenge's ``train_*``) and the event sets of the ``pipeline`` config section,
learn the module map, build the shards, train the filter, build the filter-kept shards, train the GNN, choose the
thresholds on the validation events (:mod:`trkx_tf.pipeline.thresholds`), infer and evaluate each test set, and
(``pipeline.release``) release the models with their model card (``trkx-release``). Each
stage is a command of the toolkit's console scripts with declared inputs, outputs and config slice;
:mod:`trkx_tf.pipeline.runner` skips the stages that are up to date, reruns the others and everything downstream,
and records every run in ``<pipeline dir>/pipeline.json``.

    trkx-pipeline run --config configs/demo.yaml             # everything not up to date
    trkx-pipeline run --config configs/demo.yaml --dry-run   # what would run, and why
    trkx-pipeline run --config configs/demo.yaml --from train_gnn --to eval_sim
    trkx-pipeline run --config configs/demo.yaml --only thresholds --force

Modules: ``hashing`` (content hashes with a stat cache), ``stages`` (the stages as data), ``runner`` (plan, run),
``records`` (``pipeline.json`` and the run lock), ``report`` (the plan table and the metrics lines),
``thresholds`` (the threshold choice), ``tasks`` (learn a module map, link events).
"""
