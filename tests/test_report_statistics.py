"""The report's statistics of a study with several methods, on small hand-made histories: the
spread within the window and between seeds, the rounds to the target (first crossing and for
good), the ranking against the paper's, one line per method, and what runs.csv records of each
run's code, model and data."""

import csv
import statistics

import mlflow
import pytest
from mlflow.entities import Metric, Param

from fedlm import paths
from fedlm.report import (
    PaperNumber,
    Scale,
    Study,
    group_runs,
    markdown,
    read_runs,
    summarize,
    write_report,
)
from fedlm.report.ranking import pairs_in_order, ranking, ranks
from fedlm.tracking import store
from fedlm.tracking.runs import PROVENANCE_TAGS, RunRecord, load_runs

T0 = 1_700_000_000.0


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


# The target 54 %, and the mean over the last 3 of 5 rounds.
STUDY = Study(
    name="t",
    statistic="mean_last",
    scales={"full": Scale(target_accuracy=0.54, last_rounds=3)},
)
# Crosses 54 % first after round 2, falls back after round 3, and stays from round 4.
CROSSES = (0.10, 0.50, 0.55, 0.53, 0.56, 0.57)


def test_rounds_to_the_target_the_first_crossing_and_for_good():
    (row,) = summarize(group_runs([run_of("a", CROSSES)]), STUDY)
    assert (row.values["rounds_to_target"], row.values["rounds_to_stay"]) == ([2], [4])
    lines = markdown([row], STUDY).splitlines()
    assert lines[2] == (
        "| setting | runs | final acc % | best acc % | mean acc % last 3 rounds "
        "| std acc % within window | evaluations in window | first round ≥ 54% "
        "| stays ≥ 54% from round | wall time min | training time min | running time min |"
    )
    assert lines[4].startswith(
        "| all runs | 1 | 57.0 | 57.0 | 55.3 | 2.08 | 3 | 2 (1/1) | 4 (1/1) |"
    )

    # Seed 1 reaches 54 % after round 1 and ends below it: never for good.
    below = run_of("b", (0.10, 0.55, 0.56, 0.57, 0.55, 0.53), seed="1")
    (row,) = summarize(group_runs([run_of("a", CROSSES), below]), STUDY)
    assert (row.values["rounds_to_target"], row.values["rounds_to_stay"]) == ([2, 1], [4])
    assert (row.reached, row.stays) == (2, 1)
    line = markdown([row], STUDY).splitlines()[4]
    assert "| 1.5 ± 0.7 (2/2) | 4 (1/2) |" in line


def test_the_mean_over_the_window_with_its_spread_within_the_window_and_between_seeds(tmp_path):
    seed_1 = run_of("b", (0.10, 0.50, 0.52, 0.54, 0.55, 0.56), seed="1")
    (row,) = summarize(group_runs([run_of("a", CROSSES), seed_1]), STUDY)
    accuracy = row.metrics["eval/accuracy"]
    # rounds 3-5: seed 0 0.53, 0.56, 0.57; seed 1 0.54, 0.55, 0.56
    assert accuracy["mean_last"] == pytest.approx([0.55 + 0.01 / 3, 0.55])
    assert accuracy["window_std"] == pytest.approx([statistics.stdev([0.53, 0.56, 0.57]), 0.01])
    assert accuracy["window_evaluations"] == [3, 3]
    between = statistics.stdev([0.55 + 0.01 / 3, 0.55])
    assert row.mean_std("mean_last") == pytest.approx((0.55 + 0.01 / 6, between))
    cells = markdown([row], STUDY).splitlines()[4].split(" | ")
    # mean ± the standard deviation between the seeds; the mean of the two spreads within
    assert cells[4:7] == ["55.2 ± 0.2", "1.54", "3"]

    write_report([row], STUDY, tmp_path, runs=[run_of("a", CROSSES), seed_1])
    (record,) = csv.DictReader((tmp_path / "report.csv").open())
    assert float(record["eval/accuracy mean_last_std"]) == pytest.approx(between)
    assert float(record["eval/accuracy window_std_mean"]) == pytest.approx(
        (statistics.stdev([0.53, 0.56, 0.57]) + 0.01) / 2
    )
    assert float(record["eval/accuracy window_evaluations_mean"]) == 3
    # seed 0 crosses after round 2 and stays from round 4, seed 1 after round 3 for good
    assert (record["rounds_to_target_mean"], record["rounds_to_stay_mean"]) == ("2.5", "3.5")
    assert (record["reached_target"], record["stays_at_target"]) == ("2", "2")


def test_runs_that_evaluated_a_different_number_of_times_in_the_window_show_each_count():
    sparse = run_of("b", CROSSES, seed="1")
    sparse.history["eval/accuracy"] = [p for p in sparse.history["eval/accuracy"] if p[0] != 4]
    (row,) = summarize(group_runs([run_of("a", CROSSES), sparse]), STUDY)
    assert row.metrics["eval/accuracy"]["window_evaluations"] == [3, 2]
    assert markdown([row], STUDY).splitlines()[4].split(" | ")[6] == "3 / 2"


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


def test_the_methods_ranking_beside_the_papers(tmp_path):
    rows = summarize(group_runs(methods(), include_unfinished=True), PAPER)
    placings = ranking(rows, PAPER)
    assert [(p.paper.label, p.rank, p.paper_rank) for p in placings] == [
        ("FedAdagrad", 2, 1),
        ("FedAvgM", 1, 2),
        ("FedAdam", None, 3),  # no mean over rounds 3-5 yet
        ("FedAvg", 3, 4),
    ]
    assert pairs_in_order(placings) == (2, 3)  # FedAdagrad/FedAvgM swapped
    text = markdown(rows, PAPER)
    section = text.split("## Ranking against the paper\n\n", 1)[1].split("\n\n")
    assert section[0].splitlines() == [
        "| method | setting | fedlm mean acc % last 3 rounds | fedlm rank | paper | paper rank |",
        "|---|---|---|---|---|---|",
        "| FedAdagrad | server_optimizer.name=adagrad | 55.00 | 2 | 57.5 * | 1 |",
        "| FedAvgM | server_optimizer.name=sgdm | 56.00 | 1 | 57.3 | 2 |",
        "| FedAdam | server_optimizer.name=adam | – | – | 57 * | 3 |",
        "| FedAvg | server_optimizer.name=sgd | 53.33 | 3 | 56.9 | 4 |",
    ]
    assert section[1] == (
        "By fedlm's mean acc % last 3 rounds: FedAvgM > FedAdagrad > FedAvg; by the paper's: "
        "FedAdagrad > FedAvgM > FedAdam > FedAvg. 2 of 3 pairs of methods in the paper's order. "
        "Rank 1 is the best; a method without a value yet has none. * the paper's value not "
        "confirmed against its text."
    )
    # The unfinished run is reported with its rounds so far: rounds to 54 % of rounds 1-3.
    adam = next(row for row in rows if row.paper.label == "FedAdam")
    assert (adam.values["rounds_to_target"], adam.values["rounds_to_stay"]) == ([2], [2])
    assert "| server_optimizer.name=adam | 1 (unfinished: last round 3 of 5) | – |" in text
    # report.csv: the ranks, in the rows' order (by setting)
    write_report(rows, PAPER, tmp_path, runs=methods())
    records = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [(r["setting"], r["rank"], r["paper_rank"]) for r in records] == [
        ("server_optimizer.name=adagrad", "2", "1"),
        ("server_optimizer.name=adam", "", "3"),
        ("server_optimizer.name=sgd", "3", "4"),
        ("server_optimizer.name=sgdm", "1", "2"),
    ]


def test_a_study_of_rounds_to_the_target_ranks_the_fewest_rounds_first():
    study = Study(
        name="t",
        statistic="first_at_target",
        scales={"full": Scale(target_accuracy=0.54)},
        numbers=(
            PaperNumber("FedSGD", {"server_optimizer.name": "sgd"}, 3906, "Table 2", True),
            PaperNumber("FedAvg", {"server_optimizer.name": "sgdm"}, 41, "Table 2", True),
        ),
        paper_settings={},
    )
    slow = run_of("sgd", (0.1, 0.5, 0.5, 0.55), optimizer="sgd")
    fast = run_of("sgdm", (0.1, 0.5, 0.55, 0.55), optimizer="sgdm")
    rows = summarize(group_runs([slow, fast]), study)
    assert [(p.paper.label, p.value, p.rank, p.paper_rank) for p in ranking(rows, study)] == [
        ("FedAvg", 2, 1, 1),
        ("FedSGD", 3, 2, 2),
    ]
    text = markdown(rows, study)
    assert "| FedAvg | server_optimizer.name=sgdm | 2 | 1 | 41 | 1 |" in text
    assert "By fedlm's first round at the target: FedAvg > FedSGD; by the paper's: " in text
    assert "1 of 1 pairs of methods in the paper's order." in text


def test_ranks_share_a_place_for_equal_values():
    assert ranks([0.5, 0.7, 0.5, None], higher_better=True) == [2, 1, 2, None]
    assert ranks([120.0, 90.0, 150.0], higher_better=False) == [2, 1, 3]


def test_a_method_not_comparable_with_the_paper_is_not_ranked():
    runs = methods()[:3]
    runs[0].params["training.rounds"] = "6"
    rows = summarize(group_runs(runs), PAPER)
    assert [p.paper.label for p in ranking(rows, PAPER)] == ["FedAvgM", "FedAvg"]


def test_methods_without_values_yet_are_ranked_by_the_paper_alone():
    adagrad = run_of("adagrad", (0.1, 0.5), optimizer="adagrad", status="RUNNING", rounds=5)
    adam = methods()[3]
    rows = summarize(group_runs([adagrad, adam], include_unfinished=True), PAPER)
    section = markdown(rows, PAPER).split("## Ranking against the paper\n\n", 1)[1]
    assert section.split("\n\n")[1] == (
        "By fedlm's mean acc % last 3 rounds: none ranked yet; by the paper's: FedAdagrad > "
        "FedAdam. Rank 1 is the best; a method without a value yet has none. * the paper's value "
        "not confirmed against its text."
    )


def test_the_plots_have_one_line_per_method():
    from fedlm.report.plots import figure

    rows = summarize(group_runs(methods(), include_unfinished=True), PAPER)
    for axis in ("round", "time"):
        ax = figure(rows, "eval/accuracy", axis).axes[0]
        assert [line.get_label() for line in ax.lines] == [row.group.label for row in rows]
    lines = {
        line.get_label(): line for line in figure(rows, "eval/accuracy", "round").axes[0].lines
    }
    # the unfinished run: its rounds so far
    assert list(lines["server_optimizer.name=adam"].get_xdata()) == [0, 1, 2, 3]
    adagrad = lines["server_optimizer.name=adagrad"]
    assert list(adagrad.get_ydata()) == pytest.approx([10.0, 50.0, 50.0, 55.0, 55.0, 55.0])
    # running time: 10 s of round 0's evaluation, then 40 s a round
    ax = figure(rows, "eval/accuracy", "time").axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    adagrad = lines["server_optimizer.name=adagrad"]
    assert list(adagrad.get_xdata()) == pytest.approx([(10 + 40 * s) / 60 for s in range(6)])


# -- what runs.csv records of each run's code, model and data ---------------------------------

# The full-scale FedAvg run of experiments/reddi2021/report_full (its README).
FEDAVG_FULL_RUN = "734b92c694034687b031b4f1de1ab804"
PROVENANCE = {
    "mlflow.source.git.commit": "13ec097" + "0" * 33,
    "fedlm.git.dirty": "false",
    "fedlm.model.parameters": "822570",
    "fedlm.model.vocab_size": "90",
    "fedlm.data.parser_version": "2",
    "fedlm.data.source_sha256": "ab" * 32,
}


def test_runs_csv_records_each_runs_code_model_and_data_and_leaves_older_runs_empty(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    eid = client.create_experiment("t", store.artifact_location(uri, "t"))
    ids = []
    for index, tags in enumerate([PROVENANCE, {}]):  # a run of today, a run made before
        run = client.create_run(eid, start_time=int((T0 + index) * 1000), tags=tags)
        metrics = [Metric("eval/accuracy", 0.5, int(T0 * 1000), s) for s in (0, 1)]
        params = [Param("seed", str(index)), Param("training.rounds", "1")]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, "FINISHED")
        ids.append(run.info.run_id)
    runs, _ = load_runs(uri, "t")
    write_report(summarize(group_runs(runs), Study(name="t")), Study(name="t"), tmp_path / "a")
    lines = list(csv.DictReader((tmp_path / "a" / "runs.csv").open()))
    assert [line["run_id"] for line in lines] == ids
    assert {key: lines[0][f"tag.{key}"] for key in PROVENANCE_TAGS} == PROVENANCE
    assert {lines[1][f"tag.{key}"] for key in PROVENANCE_TAGS} == {""}
    # and back from the CSV files alone
    today, older = read_runs(tmp_path / "a")
    assert {key: today.tags[key] for key in PROVENANCE_TAGS} == PROVENANCE
    assert not set(PROVENANCE_TAGS) & set(older.tags)


def test_the_committed_runs_provenance_columns(tmp_path):
    # The committed FedAvg run predates provenance tags, so its columns are empty; every run
    # committed since (the other methods' full-scale runs) records all of them, and they agree on
    # the model and the data build.
    folder = paths.PROJECT_ROOT / "experiments" / "reddi2021" / "report_full"
    runs = read_runs(folder)
    write_report(summarize(group_runs(runs), Study(name="t")), Study(name="t"), tmp_path)
    lines = {line["run_id"]: line for line in csv.DictReader((tmp_path / "runs.csv").open())}
    fedavg = lines.pop(FEDAVG_FULL_RUN)
    assert {fedavg[f"tag.{key}"] for key in PROVENANCE_TAGS} == {""}
    assert fedavg["param.model.name"] == "lstm_2x256"
    for line in lines.values():
        assert all(line[f"tag.{key}"] for key in PROVENANCE_TAGS), line["run_id"]
        assert line["tag.fedlm.model.parameters"] == "820522"
        assert line["tag.fedlm.model.vocab_size"] == "90"
        assert line["param.model.name"] == "lstm_2x256"
