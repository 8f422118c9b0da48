"""The model server: TF Serving's gRPC and REST APIs over pushed SavedModels.

``server.ModelServer`` runs it in-process (tests, benchmarks); ``cli.register`` adds
``recsys serve``; ``client.RecommendationClient`` calls it (or a stock tensorflow_model_server).
Requests flow front end (``grpc_service`` / ``rest_service``) -> ``core`` (version pinning,
input checks against the signature) -> ``scheduler`` (priorities, deadlines, dynamic batching,
least-outstanding-work balancing) -> ``workers`` / ``process_workers``.  ``version_manager``
polls the base paths (``version_scan``: version folders, file fingerprints, symlink checks),
warms up (``warmup``) and swaps versions; ``tfs_config`` writes the stock TF Serving
configuration for the same settings.  Extra REST routes (the events route) are passed in by
the top-level CLI; this package imports nothing from ``online`` or ``pipeline``.  Importing the package imports nothing heavy.
"""
