"""Print the Markdown table of the unfinished full-scale runs in experiments/reddi2021/carry/.

Each row comes from one pack (`fedlm-carry` wrote it): its run.json (run id, the round of its
checkpoint, the overrides that made the run) and its metrics.csv (every point logged so far).

    uv run python experiments/reddi2021/runs_table.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

CARRY = Path(__file__).parent / "carry"
METHODS = {
    "adagrad": "FedAdagrad",
    "yogi": "FedYogi",
    "adam": "FedAdam",
    "sgd": "FedAvg",
}


def method(params: dict[str, str]) -> str:
    name = METHODS.get(params["server_optimizer.name"], params["server_optimizer.name"])
    if name == "FedAvg" and float(params.get("server_optimizer.momentum") or 0) > 0:
        name = "FedAvgM"
    return f"{name}, seed {params['seed']}"


def row(pack: Path) -> str:
    info = json.loads((pack / "run.json").read_text())
    with open(pack / "metrics.csv", newline="") as f:
        points = list(csv.DictReader(f))
    last = max(int(p["step"]) for p in points)
    accuracies = [
        (float(p["value"]), int(p["step"])) for p in points if p["metric"] == "eval/accuracy"
    ]
    best, best_round = max(accuracies) if accuracies else (float("nan"), 0)
    overrides = info["tags"]["fedlm.hydra.overrides"]
    command = f"uv run fedlm-train {overrides} resume=experiments/reddi2021/carry/{pack.name}"
    continues = info["tags"].get("fedlm.continues")
    run = f"`{info['run_id']}`" + (f" (continues `{continues}`)" if continues else "")
    return (
        f"| {method(info['params'])} | {run} | [carry/{pack.name}](carry/{pack.name}/) "
        f"| {last} | {info['round']} | {best:.1%} (round {best_round}) | `{command}` |"
    )


def main() -> None:
    print(
        "| method | MLflow run | pack | last round logged | checkpoint (pack) "
        "| best eval accuracy so far | continue with |"
    )
    print("|---|---|---|---:|---:|---:|---|")
    for pack in sorted(CARRY.iterdir()):
        if (pack / "run.json").is_file():
            print(row(pack))


if __name__ == "__main__":
    main()
