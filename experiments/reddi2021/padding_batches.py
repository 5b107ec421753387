"""Which rounds of a run give some client a last batch whose targets are all padding.

Replays a run's client sampling and each client's shuffled data (the same seeds as
``fedlm-train``, no training) and lists the rounds in which some client's batch holds nothing but
padding targets: the chunk ``[eos, pad x seq_len]`` alone in its last batch. Before commit e7a7fe7
fedlm's training loss was NaN for such a batch (0 / 0) while its gradient was zero, so that round's
``train/loss`` was NaN and its training unchanged. With ``--histories`` (a report's
``histories.csv``) it sets those rounds beside the rounds whose logged ``train/loss`` is NaN: if
the two lists are equal, no NaN came from anything else (a client whose training diverged).

    uv run python experiments/reddi2021/padding_batches.py --rounds 500 \\
        --histories experiments/reddi2021/report_full/histories.csv -- \\
        +experiment=reddi2021 reddi2021=fedavg seed=0
"""

from __future__ import annotations

import argparse
import csv
import math

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import fedlm.cli.train  # noqa: F401  (registers the train schema and fedlm's resolvers)
from fedlm.cli.common import CONFIG_DIR


def padding_only_rounds(overrides: list[str], rounds: int) -> dict[int, list[str]]:
    """Round -> the sampled clients whose some batch has only padding targets."""
    from fedlm.experiment import prepare
    from fedlm.rounds import round_datasets

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "output_dir=."])
    cfg = OmegaConf.to_object(cfg)
    setup = prepare(cfg, say=lambda line: None)
    ignore = setup.pipeline.ignore_id
    found = {}
    for round_num in range(1, rounds + 1):
        ids = setup.sampler.sample()
        datasets = round_datasets(
            setup.pipeline, setup.train_snippets, ids, cfg.training, cfg.seed, round_num
        )
        hit = [
            client
            for client, dataset in zip(ids, datasets, strict=True)
            if any(bool((y.numpy() == ignore).all()) for _, y in dataset)
        ]
        if hit:
            found[round_num] = hit
    return found


def nan_rounds(histories: str, rounds: int) -> list[int]:
    with open(histories, newline="", encoding="utf-8") as f:
        return sorted(
            int(line["round"])
            for line in csv.DictReader(f)
            if line["metric"] == "train/loss"
            and math.isnan(float(line["value"]))
            and int(line["round"]) <= rounds
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, required=True, help="replay rounds 1..ROUNDS")
    p.add_argument("--histories", help="a report's histories.csv: compare with its NaN rounds")
    p.add_argument("overrides", nargs="*", help="the run's fedlm-train overrides")
    args = p.parse_args()
    found = padding_only_rounds(args.overrides, args.rounds)
    for round_num, clients in found.items():
        print(f"round {round_num}: {', '.join(clients)}")
    print(f"{len(found)} of {args.rounds} rounds have a client batch of padding targets only")
    if args.histories:
        logged = nan_rounds(args.histories, args.rounds)
        print(f"{len(logged)} rounds logged train/loss NaN")
        print("the same rounds" if logged == sorted(found) else f"NaN rounds: {logged}")


if __name__ == "__main__":
    main()
