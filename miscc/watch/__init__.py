"""Watching quality while the GAN trains: the fixed evaluation and display set (``eval_set``), the
evaluation through the metrics registry (``evaluation``), ``metrics.jsonl`` and the best epoch
(``history``), the epoch grid and the metric curves (``display``)."""
