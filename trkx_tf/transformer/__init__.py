"""TrackFormers-style track finding with hit transformers, beside the GNN pipeline (docs/trackformers.md).

Modules, each one job:

* :mod:`~trkx_tf.transformer.data`: reduced events (N particles drawn from simulated events) and real labelled
  subsets, written as TrackML CSV events;
* :mod:`~trkx_tf.transformer.shards`: the hits-only padded HDF5 shards and the batch source the training loop reads;
* :mod:`~trkx_tf.transformer.model`: the encoder-only Sonnet transformer with padding masks;
* :mod:`~trkx_tf.transformer.heads`: EncCla's balanced parameter bins and the EncReg / EncCla training tasks;
* :mod:`~trkx_tf.transformer.cluster`: EncReg track building (scikit-learn HDBSCAN / DBSCAN), submissions, metrics;
* :mod:`~trkx_tf.transformer.local`: local attention over φ–η sectors for full events;
* :mod:`~trkx_tf.transformer.run`: the library behind ``trkx-tracker`` (train, infer).

Nothing is imported or computed at package import.
"""
