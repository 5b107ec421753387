"""The words around the tables: which evaluations a mean over the last rounds averages,
and the differences from the paper.

Made on runs in a temporary MLflow store (the ``uri`` and ``sweep`` fixtures of
conftest.py) or by hand (report_runs.py)."""

import pytest
from report_runs import FULL, paper_file, record, study_runs

from fedlm.report import (
    Scale,
    Study,
    group_runs,
    load_study,
    markdown,
    summarize,
)
from fedlm.report.study import study_file


def test_the_mean_over_the_last_rounds_says_which_evaluations_it_averages():
    run = record(rounds=1200, every=10, params={"experiment_scale": "full"})
    (row,) = summarize(group_runs([run]), FULL)
    # accuracy round / 2400 after rounds 1110, 1120, ..., 1200
    assert row.metrics["eval/accuracy"]["mean_last"] == pytest.approx([1155 / 2400])
    assert (
        "Mean acc % last 100 rounds: the mean over the 10 evaluations in rounds 1101–1200 "
        "(every 10 rounds), in the one run." in markdown([row], FULL)
    )
    other = record("q", seed="1", rounds=1200, every=20, params={"experiment_scale": "full"})
    rows = summarize(group_runs([run, other]), FULL)
    assert (
        "Mean acc % last 100 rounds: the runs differ: all runs seed 0: the mean over the 10 "
        "evaluations in rounds 1101–1200 (every 10 rounds); all runs seed 1: the mean over the 5 "
        "evaluations in rounds 1101–1200 (every 20 rounds)." in markdown(rows, FULL)
    )


def test_the_mean_over_a_fraction_of_rounds_names_rounds_and_count():
    quick = Study(name="t", statistic="mean_last", scales={"quick": Scale(last_fraction=0.1)})
    runs = [
        record(str(s), seed=str(s), rounds=30, params={"experiment_scale": "quick"}) for s in (0, 1)
    ]
    text = markdown(summarize(group_runs(runs), quick), quick)
    assert (
        "Mean acc % last 10% of rounds: the mean over the 2 evaluations in rounds 28–30 "
        "(every 2 rounds), in each of the 2 runs." in text
    )


def test_the_paper_files_differences_are_listed_where_the_papers_numbers_are_shown(tmp_path):
    study = load_study(
        paper_file(
            tmp_path,
            "differences: ['data: another build', 'loss: padding left out']\n"
            "scales:\n  full:\n    differences: [evaluation every 10 rounds]\n  quick: {}\n",
        )
    )
    assert study.differences == ("data: another build", "loss: padding left out")
    assert study.scale("full").differences == ("evaluation every 10 rounds",)
    full = record(params={"experiment_scale": "full"})
    text = markdown(summarize(group_runs([full]), study), study)
    assert (
        "## Differences from the paper\n\n- data: another build\n- loss: padding left out\n"
        "- evaluation every 10 rounds\n" in text
    )
    quick = record(params={"experiment_scale": "quick"})
    text = markdown(summarize(group_runs([quick]), study), study)
    assert (
        "## Differences from the paper\n\n- data: another build\n- loss: padding left out\n\n"
        in text
    )
    # Both scales at once: each scale's own are named.
    quick_1 = record("q", seed="1", params={"experiment_scale": "quick"})
    rows = summarize(group_runs([full, quick_1], ["experiment_scale"]), study)
    assert "- Scale full: evaluation every 10 rounds" in markdown(rows, study)
    # Without the paper's numbers (another metric first) there is nothing to differ from.
    rows = summarize(group_runs([full]), study, ["eval/loss", "eval/accuracy"])
    full.history["eval/loss"] = full.history["eval/accuracy"]
    assert "Differences from the paper" not in markdown(rows, study)


def test_the_shipped_reddi2021_report_states_its_differences_from_the_paper():
    study = load_study(study_file("reddi2021"))
    text = markdown(summarize(group_runs(study_runs()), study), study)
    section = text.split("## Differences from the paper\n\n", 1)[1].split("\n\n", 1)[0]
    items = section.splitlines()
    assert [item.split(":", 1)[0] for item in items] == [
        "- Data",
        "- Training loss",
        "- Evaluation",
        "- Seeds",
    ]
    assert "1,117 clients (25,871 training / 6,241 test examples)" in items[0]
    assert "715 clients (16,068 / 2,356 examples" in items[0]
    assert "averages 100 evaluations, as the paper" in items[2]
    # At the quick scale the paper's numbers stand apart, with the differences of every scale.
    quick = summarize(group_runs(study_runs("experiment_scale=quick")), study)
    items = markdown(quick, study).split("## Differences from the paper\n\n", 1)[1]
    assert [i.split(":", 1)[0] for i in items.split("\n\n", 1)[0].splitlines()] == [
        "- Data",
        "- Training loss",
    ]
