"""The methods ranked beside the paper's ranking."""

import csv

from report_runs import PAPER, methods, run_of

from fedlm.report import (
    PaperNumber,
    Scale,
    Study,
    group_runs,
    markdown,
    summarize,
    write_report,
)
from fedlm.report.ranking import pairs_in_order, ranking, ranks


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
