"""Models: Sonnet 2 modules on padded batches (see :mod:`trkx_tf.graphs.batch`). They know nothing of Horovod.

=====================================================  ==============================================================
``filter.EdgeFilter``                                  edge-filter MLP on the features of both edge ends (an EdgeBlock)
``interaction.InteractionNetwork``                     encode, T message-passing steps (shared weights), decode
``attention.AttentionGNN``                             attention GNN: sigmoid edge attention, T residual node updates
``embedding.EmbeddingMLP``                             metric-learning embedding of hits
``embedding.embed_hits``                               an event's hits in embedding space (the embedding builder's input)
``registry.build_model``                               the one reader of the ``model`` config section
``reference.GraphNetsInteractionNetwork``              the plain graph_nets formulation (oracle and baseline)
``layers`` / ``kernels`` / ``graph``                   building blocks, fused kernels, padding-safe graph helpers
``native``                                             the fused kernels' C++ CPU version, built on first use
=====================================================  ==============================================================

Trained models are restored by :mod:`trkx_tf.train.checkpoints`. Importing this package imports nothing else
(submodules load TensorFlow when imported).
"""
