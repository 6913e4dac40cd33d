"""Training: losses, metrics, optimizer, step functions, the loop and the backend interface.

=====================================  ===================================================================
``loop.train(cfg, sources, backend)``  the ``trkx-train`` entry point (reads the config)
``loop.fit(model, task, opt, ...)``    the loop itself: resume, checkpoints, TensorBoard, metrics.jsonl
``backend.Backend``                    the hooks a distributed backend implements (``SingleBackend`` here)
``steps.StepFunctions``                train / evaluate / forward compiled once per bucket shape
``tasks.EdgeTask`` / ``EmbeddingTask`` what a step computes for edge classifiers / the embedding
``losses``, ``metrics``, ``optim``     weighted BCE and hinge losses, counts, Adam and the LR schedule
``pairs.mine_pairs``                   the embedding's training pairs (random and k-NN hard negatives)
=====================================  ===================================================================

Importing this package imports nothing else.
"""
