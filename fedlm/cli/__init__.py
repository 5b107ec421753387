"""Command-line entry points: the only place that imports Hydra."""
