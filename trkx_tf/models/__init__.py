"""Models: Sonnet 2 modules on padded batches (see :mod:`trkx_tf.graphs.batch`). They know nothing of Horovod.

=====================================================  ==============================================================
``filter.EdgeFilter``                                  edge-filter MLP on the features of both edge ends (an EdgeBlock)
``interaction.InteractionNetwork``                     encode, T message-passing steps (shared weights), decode
``attention.AttentionGNN``                             attention GNN: sigmoid edge attention, T residual node updates
``embedding.EmbeddingMLP``                             metric-learning embedding of hits
``embedding.embedding_radius_graph``                   candidate edges: radius graph in embedding space (cKDTree)
``embedding.load_embedding_model``                     a trained embedding from a training checkpoint
``registry.build_model``                               the one reader of the ``model`` config section
``reference.GraphNetsInteractionNetwork``              the plain graph_nets formulation (oracle and baseline)
``layers`` / ``kernels`` / ``graph``                   building blocks, fused kernels, padding-safe graph helpers
``native``                                             the fused kernels' C++ CPU version, built on first use
=====================================================  ==============================================================

Importing this package imports nothing else (submodules load TensorFlow when imported).
"""
