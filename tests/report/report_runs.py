"""Runs for the report tests: logged to an MLflow store as fedlm-train logs them
(make_run), or made by hand (record); the studies they are reported under."""

import dataclasses

import mlflow
from hydra import compose, initialize_config_dir
from mlflow.entities import Metric, Param
from omegaconf import OmegaConf, open_dict

import fedlm.cli.train  # noqa: F401  (registers the train schema for compose)
from fedlm.cli.common import CONFIG_DIR
from fedlm.report import (
    Scale,
    Study,
)
from fedlm.report.study import PaperNumber
from fedlm.tracking import run_info, store
from fedlm.tracking.runs import RunRecord

T0 = 1_700_000_000.0  # seconds; every run starts at T0 + its index * 1000


def make_run(
    client,
    experiment_id,
    index,
    *,
    overrides=None,
    params=None,
    accuracy=(),
    status="FINISHED",
    loss=None,
    epsilon=(),
):
    """A run as fedlm-train logs one: params, override tags of a multirun job, eval/accuracy (and
    eval/loss: ``loss``, else 5 - 4 x accuracy) per round (round r logged 60 s after the start
    times r), round/seconds, privacy/epsilon and privacy/delta from round 1 when ``epsilon`` is
    given, and its end."""
    start = T0 + 1000 * index
    tags = {f"override.{k}": v for k, v in (overrides or {}).items()}
    run = client.create_run(experiment_id, start_time=int(start * 1000), tags=tags)
    run_id = run.info.run_id
    params = {"training.rounds": str(len(accuracy) - 1), **(params or {})}
    metrics = [
        Metric("eval/accuracy", value, int((start + 60 * step) * 1000), step)
        for step, value in enumerate(accuracy)
    ]
    losses = loss if loss is not None else [5.0 - 4.0 * a for a in accuracy]
    metrics += [
        Metric("eval/loss", value, int((start + 60 * step) * 1000), step)
        for step, value in enumerate(losses)
    ]
    metrics += [
        Metric("round/seconds", 30.0, int((start + 60 * step) * 1000), step)
        for step in range(1, len(accuracy))
    ]
    for step, value in enumerate(epsilon, start=1):
        metrics.append(Metric("privacy/epsilon", value, int((start + 60 * step) * 1000), step))
        metrics.append(Metric("privacy/delta", 0.001, int((start + 60 * step) * 1000), step))
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    if status != "RUNNING":
        end = start + 60 * max(len(accuracy) - 1, 0) + 30
        client.set_terminated(run_id, status, end_time=int(end * 1000))
    return run_id


def experiment(uri, name):
    """A new experiment whose artifacts stay beside the temporary store, as fedlm makes them."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    return client, client.create_experiment(name, store.artifact_location(uri, name))


# Two server optimizers x seeds 0 and 1, accuracy after rounds 0..4 (sgd+momentum, adam), plus a
# FAILED and a RUNNING run, a finished run superseded by a newer one of the same seed, a sweep
# parent (never a training run), and no seed-1 run of adam.
SGD_0 = (0.01, 0.20, 0.30, 0.40, 0.50)
SGD_1 = (0.01, 0.22, 0.34, 0.46, 0.54)
ADAM_0 = (0.01, 0.10, 0.15, 0.20, 0.25)


# The paper trained 4 rounds (as the runs did), FedAvgM at server learning rate 1.0 (as the sgdm
# runs did) and FedAdam at 0.01 (the adam runs used 0.1: not comparable).
STUDY = Study(
    name="sweep",
    paper="A. Paper, 2021",
    statistic="mean_last",
    scales={"quick": Scale(target_accuracy=0.45, last_fraction=0.5)},
    numbers=(
        PaperNumber(
            "FedAvgM",
            {"server_optimizer.name": "sgd", "server_optimizer.momentum": "0.9"},
            57.3,
            "Table 2",
            True,
            paper_settings={"server_optimizer.learning_rate": "1.0"},
        ),
        PaperNumber(
            "FedAdam",
            {"server_optimizer.name": "adam"},
            57.0,
            "Table 2",
            shown="57.0",
            paper_settings={"server_optimizer.learning_rate": "0.01"},
        ),
    ),
    paper_settings={"training.rounds": "4"},
)


REDDI2021 = ("fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi")
MCMAHAN2017 = ("fedsgd", "fedavg_e1_b50", "fedavg_e1_b10", "fedavg_e5_b50", "fedavg_e5_b10")


def study_runs(*overrides: str, study="reddi2021", methods=REDDI2021) -> list[RunRecord]:
    """One finished run per method of ``study`` with the params the shipped config logs."""
    runs = []
    for method in methods:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            chosen = [f"+experiment={study}", f"{study}={method}", "output_dir=."]
            cfg = compose("train", overrides=[*chosen, *overrides])
        with open_dict(cfg):
            cfg.pop("hydra", None)
        params = run_info.params(dataclasses.asdict(OmegaConf.to_object(cfg)))
        tags = {f"override.{study}": method}
        runs.append(RunRecord(method, method, "FINISHED", params=params, tags=tags))
    return runs


# -- time that excludes interruptions --------------------------------------------------------

HOURS_10 = 10 * 3600.0


def record(
    run_id="r",
    *,
    seed="0",
    rounds=4,
    trained=None,
    every=2,
    accuracy=None,
    round_seconds=30.0,
    eval_seconds=10.0,
    gap_after=None,
    status="FINISHED",
    params=None,
    tags=None,
    start=T0,
):
    """A run as fedlm-train logs one, by hand: ``trained`` rounds (default: all) of
    ``round_seconds`` each, evaluated after round 0 and every ``every`` rounds (``accuracy(round)``,
    default round / (2 x rounds), and ``eval_seconds`` each), each round logged 60 s after the one
    before, and ``gap_after`` a round after which the run stood still for 10 hours (resumed)."""
    trained = rounds if trained is None else trained
    accuracy = accuracy or (lambda step: step / (2 * rounds))

    def at(step):
        return start + 60.0 * step + (HOURS_10 if gap_after is not None and step > gap_after else 0)

    evaluated = [s for s in range(trained + 1) if s % every == 0 or s == rounds]
    history = {
        "eval/accuracy": [(s, accuracy(s), at(s)) for s in evaluated],
        "round/seconds": [(s, round_seconds, at(s)) for s in range(1, trained + 1)],
    }
    if eval_seconds is not None:
        history["eval/seconds"] = [(s, eval_seconds, at(s)) for s in evaluated]
    params = {"seed": seed, "training.rounds": str(rounds), **(params or {})}
    return RunRecord(
        run_id,
        run_id,
        status,
        params=params,
        tags=dict(tags or {}),
        start_time=start,
        end_time=at(trained) + 30.0 if status != "RUNNING" else None,
        history=history,
    )


# -- which evaluations a mean over the last rounds averages ------------------------------------

FULL = Study(name="t", statistic="mean_last", scales={"full": Scale(last_rounds=100)})


# -- the differences from the paper, stated in the report ---------------------------------------


def paper_file(tmp_path, extra: str) -> str:
    path = tmp_path / "paper.yaml"
    path.write_text(
        "study: t\npaper: A. Paper\nmetric: eval/accuracy\nstatistic: final\n"
        "paper_settings: {training.rounds: 4}\n"
        "numbers:\n  - {label: FedAvg, match: {}, value: 56.9, source: Table 2, confirmed: true}\n"
        + extra
    )
    return str(path)


# -- an interim report of runs that have not finished ------------------------------------------


def running_at_312() -> RunRecord:
    """Seed 0 of a full-scale run, still running: it has trained 312 of its 1200 rounds and was
    evaluated every 10 rounds."""
    return record(
        "a",
        rounds=1200,
        trained=312,
        every=10,
        status="RUNNING",
        params={"experiment_scale": "full"},
    )


TO_54 = Study(name="t", statistic="first_at_target", scales={"full": Scale(target_accuracy=0.54)})


def stopped_run(run_id: str, seed: str, at: int) -> RunRecord:
    """A full-scale run of up to 4000 rounds, evaluated every round, that reached 54% after round
    ``at`` and stopped there at its training.stop_at target, FINISHED."""
    return record(
        run_id,
        seed=seed,
        rounds=4000,
        trained=at,
        every=1,
        accuracy=lambda step: 0.54 if step >= at else 0.3,
        params={"experiment_scale": "full"},
        tags={"fedlm.stopped_at_round": str(at)},
    )


# Runs of a study with several methods (the ranking, the plots, the window statistics).


def run_of(run_id, accuracy, *, seed="0", optimizer="sgd", status="FINISHED", rounds=None):
    """A run that evaluated after round 0 and each round since: ``accuracy`` from round 0, each
    round 30 s of training and 10 s of evaluation, logged 60 s apart; ``rounds``: the rounds it
    was set to train (default: those it has)."""
    trained = len(accuracy) - 1
    rounds = trained if rounds is None else rounds
    history = {
        "eval/accuracy": [(s, a, T0 + 60 * s) for s, a in enumerate(accuracy)],
        "eval/seconds": [(s, 10.0, T0 + 60 * s) for s in range(trained + 1)],
        "round/seconds": [(s, 30.0, T0 + 60 * s) for s in range(1, trained + 1)],
    }
    params = {
        "seed": seed,
        "training.rounds": str(rounds),
        "experiment_scale": "full",
        "server_optimizer.name": optimizer,
    }
    end = T0 + 60 * trained + 30 if status != "RUNNING" else None
    return RunRecord(run_id, run_id, status, params, {}, T0, end, history)


# Crosses 54 % first after round 2, falls back after round 3, and stays from round 4.
CROSSES = (0.10, 0.50, 0.55, 0.53, 0.56, 0.57)


# Three methods the paper ranks FedAdagrad > FedAvgM > FedAvg, run with its settings.
PAPER = Study(
    name="t",
    statistic="mean_last",
    scales={"full": Scale(target_accuracy=0.54, last_rounds=3)},
    numbers=(
        PaperNumber("FedAdagrad", {"server_optimizer.name": "adagrad"}, 57.5, "Table 1"),
        PaperNumber("FedAvgM", {"server_optimizer.name": "sgdm"}, 57.3, "Table 1", True),
        PaperNumber("FedAvg", {"server_optimizer.name": "sgd"}, 56.9, "Table 1", True),
        PaperNumber("FedAdam", {"server_optimizer.name": "adam"}, 57.0, "Table 1"),
    ),
    paper_settings={"training.rounds": "5"},
)


def methods():
    """FedAvgM best, FedAdagrad second, FedAvg third over rounds 3-5; FedAdam unfinished, at
    round 3 of 5."""
    return [
        run_of("adagrad", (0.1, 0.5, 0.5, 0.55, 0.55, 0.55), optimizer="adagrad"),
        run_of("sgdm", (0.1, 0.5, 0.5, 0.56, 0.56, 0.56), optimizer="sgdm"),
        run_of("sgd", CROSSES[:3] + (0.53, 0.53, 0.54), optimizer="sgd"),
        run_of("adam", (0.1, 0.5, 0.55, 0.56), optimizer="adam", status="RUNNING", rounds=5),
    ]
