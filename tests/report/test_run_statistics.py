"""One run's statistics, on small hand-made histories: the rounds to the target (first crossing
and for good), and the mean over the window with its spread within the window and between seeds."""

import csv
import statistics

import pytest
from report_runs import CROSSES, run_of

from fedlm.report import (
    Scale,
    Study,
    group_runs,
    markdown,
    summarize,
    write_report,
)

# The target 54 %, and the mean over the last 3 of 5 rounds.
STUDY = Study(
    name="t",
    statistic="mean_last",
    scales={"full": Scale(target_accuracy=0.54, last_rounds=3)},
)


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
