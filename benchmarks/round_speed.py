"""Seconds per round, characters per second and peak memory of federated training.

Speed and memory are measured here, never in tests. Any ``fedlm-train`` override applies:

    uv run python benchmarks/round_speed.py                              # tutorial GRU, real data
    uv run python benchmarks/round_speed.py model=lstm_2x256 data.pipeline=paper \
        training.seq_len=80 training.batch_size=4 algorithm.client_weighting=num_tokens
    uv run python benchmarks/round_speed.py data=synthetic model=tiny training.seq_len=10

Prints one line of JSON: the median of the rounds after the first (which pays for compilation).
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import sys
import time

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fedlm.cli.common import CONFIG_DIR, quiet_libraries
from fedlm.cli.train import run_context  # noqa: F401  (registers the schema and resolvers)
from fedlm.experiment import run
from fedlm.tracking.base import Tracker

DEFAULTS = ["tracking=none", "training.rounds=4", "eval.every=0", "eval.generate_length=0"]


class RoundTimes(Tracker):
    def __init__(self):
        self.rounds: list[dict[str, float]] = []

    def log_metrics(self, metrics, step):
        if step > 0:
            self.rounds.append(dict(metrics))


def main(overrides: list[str]) -> dict:
    quiet_libraries()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*DEFAULTS, "output_dir=.", *overrides])
    times = RoundTimes()
    started = time.monotonic()
    run(OmegaConf.to_object(cfg), times, say=lambda line: print(line, file=sys.stderr))
    later = times.rounds[1:] or times.rounds
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,  # TFF's worker process
    )
    return {
        "overrides": overrides,
        "model": cfg.model.name,
        "pipeline": cfg.data.pipeline,
        "clients_per_round": cfg.training.clients_per_round,
        "seconds_per_round": statistics.median(r["round/seconds"] for r in later),
        "first_round_seconds": times.rounds[0]["round/seconds"],
        "characters_per_second": statistics.median(r["round/tokens_per_second"] for r in later),
        "total_seconds": time.monotonic() - started,
        "peak_rss_mib": peak / 1024,
        "cpus": platform.processor() or platform.machine(),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
