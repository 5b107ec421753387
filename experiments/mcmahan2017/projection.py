"""Projected time of each full-scale mcmahan2017 row on this machine, from one measured setting.

Measured (``benchmarks/measured/speed_2core_mcmahan2017.json``, 2 cores): FedAvg E=1 B=10 at the
full scale, 112 clients a round: its median training round, the evaluation of the whole test
split, and the start to the end of round 1. Projected: every other setting's training round,
scaled from the measured one by the work of a round, counted two ways from fedlm's build of the
data (``fedlm-data``'s SQLite, the paper pipeline's sequences of 80):

- by batches (clients per round x the mean batches a client trains: E x ceil(sequences / B), or
  one for FedSGD), as if a batch of 50 or a whole client cost what a batch of 10 does: a lower
  bound for B = 50 and FedSGD;
- by sequences (clients per round x E x the mean sequences of a client), as if a sequence cost
  what it does in batches of 10: an upper bound, since larger batches are no slower per sequence.

For B = 10 the two agree. A run's time is the start, then for each round its training and one
evaluation (``eval.every=1``) up to the round the paper reports reaching 54% (paper.yaml; fedlm
may need more or fewer, and stops at 4000 at most). Checkpoints and tracking are not in it.

    uv run python experiments/mcmahan2017/projection.py
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import yaml

from fedlm.data.clients import default_cache_dir, read_snippets
from fedlm.data.sizes import paper_sequences

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ROOT / "benchmarks/measured/speed_2core_mcmahan2017.json"
SETTINGS = ("fedsgd", "fedavg_e1_b50", "fedavg_e1_b10", "fedavg_e5_b50", "fedavg_e5_b10")
MEASURED_SETTING = "fedavg_e1_b10"  # conf/experiment/mcmahan2017.yaml's default
SEEDS = 3  # conf/experiment_scale/mcmahan2017/full.yaml
SESSION_HOURS = 3.0


def training_of(setting: str) -> dict:
    text = (ROOT / "conf/mcmahan2017" / f"{setting}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["training"]


def work(training: dict, sequences: list[int]) -> tuple[float, float]:
    """Mean batches and mean sequences one client trains in a round (as fedlm.experiment's
    client_work: E epochs of its batches, capped by max_batches_per_client)."""
    epochs, batch_size = training["local_epochs"], training["batch_size"]
    cap = training.get("max_batches_per_client")
    batches = [epochs * math.ceil(s / batch_size) for s in sequences]
    batches = [b if cap is None else min(b, cap) for b in batches]
    # With a cap of one whole-client batch (FedSGD) a client trains its sequences once.
    trained = [min(epochs * s, (cap or math.inf) * batch_size) for s in sequences]
    return statistics.fmean(batches), statistics.fmean(trained)


def paper_rounds(training: dict) -> tuple[int, bool] | None:
    paper = yaml.safe_load((ROOT / "experiments/mcmahan2017/paper.yaml").read_text("utf-8"))
    for number in paper["numbers"]:
        if all(training.get(k.split(".", 1)[1]) == v for k, v in number["match"].items()):
            return number["value"], number.get("confirmed", False)
    return None


def main() -> None:
    measured = json.loads(MEASURED.read_text(encoding="utf-8"))["settings"][0]
    fedlm = measured["fedlm"]
    round_s = fedlm["median_round_seconds"]
    eval_s = measured["evaluation"]["fedlm_seconds"]
    start_s = fedlm["start_to_first_round_seconds"] - fedlm["first_round_seconds"] - eval_s
    snippets = read_snippets(str(default_cache_dir()), "train")
    sequences = [paper_sequences(s, 80) for s in snippets.values()]
    sequences = [s for s in sequences if s > 0]
    base_batches, base_sequences = work(training_of(MEASURED_SETTING), sequences)
    print(
        f"measured {MEASURED_SETTING}: {round_s:.1f} s a training round, {eval_s:.1f} s an "
        f"evaluation, {start_s:.0f} s start-up; {len(sequences)} clients, "
        f"{statistics.fmean(sequences):.1f} sequences each on average\n"
    )
    print(
        "| setting | batches / client / round | training s/round (by batches – by sequences) "
        "| paper rounds to 54% | hours a run | hours, 3 seeds | 3-hour sessions a run |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for setting in SETTINGS:
        training = training_of(setting)
        batches, trained = work(training, sequences)
        low = round_s * batches / base_batches
        high = round_s * trained / base_sequences
        rounds, confirmed = paper_rounds(training)
        hours = [(start_s + rounds * (s + eval_s)) / 3600 for s in (low, high)]
        span = "–".join(f"{h:.1f}" for h in dict.fromkeys(round(h, 1) for h in hours))
        seeds = "–".join(str(h) for h in dict.fromkeys(round(SEEDS * h) for h in hours))
        sessions = "–".join(
            str(n) for n in dict.fromkeys(math.ceil(h / SESSION_HOURS) for h in hours)
        )
        seconds = f"{low:.0f}" if round(low) == round(high) else f"{low:.0f}–{high:.0f}"
        if setting == MEASURED_SETTING:
            seconds += " (measured)"
        mark = "" if confirmed else " (unconfirmed)"
        print(
            f"| {setting} | {batches:.2f} | {seconds} | {rounds}{mark} | {span} | {seeds} "
            f"| {sessions} |"
        )


if __name__ == "__main__":
    main()
