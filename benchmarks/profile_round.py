"""Where a fedlm round's time goes: the round loop's own steps, timed, and a profile of the driver.

    uv run python benchmarks/profile_round.py --setting tutorial --rounds 3
    uv run python benchmarks/profile_round.py --setting mcmahan2017 --rounds 2
    uv run python benchmarks/profile_round.py --setting tutorial -- model.pretrained=none

Runs the rounds as :func:`fedlm.experiment.run` runs them (the same setup, runtime, process,
client datasets and order), but takes each round apart: the sampler, building the round's client
datasets (in this process, before any worker starts on the round), the order over the workers,
and the round itself (``Runtime.server_state``'s ``next``: sending the datasets, and the state
where it does not stay on the worker, the workers' training, the metrics back); for each, wall
seconds, and the CPU seconds of this process (the driver) and of fedlm's TFF workers over the
whole round (read from ``/proc``, Linux). A worker's CPU well below the round's
wall seconds times its threads is time it waited. Round 1 traces and compiles.

Inside ``process.next`` the work runs in other threads (fedlm's event loops, gRPC) and in the
workers, which ``cProfile`` does not see. What was used for the issue's profile: the worker's
pids are printed; ``perf record -g -p PID -- sleep 30`` and ``perf report --sort dso,sym`` (or
``--sort pid`` for its threads) show where a worker spends its CPU, and ``py-spy dump --pid PID``
where the driver's threads wait. Measure on a quiet machine; on a busy one compare rows of one run
only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from speed import SETTINGS, compose_config

from fedlm.cli.common import quiet_libraries
from fedlm.experiment import learning_process, prepare, starting_weights
from fedlm.federated import runtime, workers
from fedlm.rounds import client_work, round_datasets

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


def worker_cpu() -> float:
    return sum(cpu_seconds(pid) for pid in workers.running_workers())


def profile(setting: str, overrides: list[str], rounds: int) -> None:
    cfg = compose_config([*SETTINGS[setting], *overrides, f"training.rounds={rounds}"])
    setup = prepare(cfg, say=lambda line: None)
    print(f"[{setting}] {' '.join(SETTINGS[setting] + overrides)}", file=sys.stderr)
    with runtime.execution_context(cfg.runtime, say=print) as rt:
        process = learning_process(cfg, setup, say=lambda line: None)
        state = rt.server_state(
            process,
            process.set_model_weights(
                process.initialize(), starting_weights(setup.task, setup.pretrained)
            ),
        )
        print(f"driver pid {os.getpid()}, worker pids {workers.running_workers()}")
        print(
            "round | sample s | datasets s | order s | next s | round s | driver CPU | workers CPU"
        )
        print("---|---:|---:|---:|---:|---:|---:|---:")
        for round_num in range(1, rounds + 1):
            cpu0, workers0, t0 = time.process_time(), worker_cpu(), time.monotonic()
            client_ids = setup.sampler.sample()
            t1 = time.monotonic()
            datasets = round_datasets(
                setup.pipeline, setup.train_snippets, client_ids, cfg.training, cfg.seed, round_num
            )
            t2 = time.monotonic()
            order = rt.order([client_work(setup.eligible[c], cfg.training) for c in client_ids])
            t3 = time.monotonic()
            state.next([datasets[i] for i in order])
            t4 = time.monotonic()
            driver, worker = time.process_time() - cpu0, worker_cpu() - workers0
            print(
                f"{round_num} | {t1 - t0:.2f} | {t2 - t1:.2f} | {t3 - t2:.3f} | {t4 - t3:.2f} "
                f"| {t4 - t0:.2f} | {driver:.2f} | {worker:.2f}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", default="tutorial", choices=list(SETTINGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="fedlm-train overrides")
    args = parser.parse_args(argv)
    quiet_libraries()
    profile(args.setting, args.overrides, args.rounds)


if __name__ == "__main__":
    main()
