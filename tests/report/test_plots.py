"""The report's plots: the paper's number as a line beside the settings comparable with it, one
line per method, whole rounds, and running time without the interruption of a resumed run."""

import pytest
from report_runs import HOURS_10, PAPER, STUDY, methods, record

from fedlm.report import (
    Study,
    group_runs,
    markdown,
    read_runs,
    summarize,
    write_report,
)
from fedlm.report.plots import figure
from fedlm.report.study import PaperNumber
from fedlm.report.summary import Difference, Group, Row
from fedlm.tracking.runs import RunRecord, load_runs


def row(label: str, comparable: bool) -> Row:
    history = {
        "eval/accuracy": [(0, 0.1, 0.0), (1, 0.5, 60.0)],
        "round/seconds": [(1, 30.0, 60.0)],
    }
    run = RunRecord(label, label, "FINISHED", history=history)
    paper = PaperNumber(label, {}, 56.9, "Reddi et al. 2021, Table 1", shown="56.9")
    differences = [] if comparable else [Difference("training.rounds", ("12",), "1200")]
    return Row(Group({"reddi2021": label}, runs=[run]), None, {}, {}, paper, None, differences)


def paper_lines(fig) -> list[tuple[str, list]]:
    return [
        (line.get_label(), list(line.get_ydata()))
        for line in fig.axes[0].get_lines()
        if line.get_label().startswith("paper")
    ]


def test_the_paper_value_is_a_line_where_the_setting_is_comparable():
    rows = [row("fedavg", comparable=True), row("fedadam", comparable=False)]
    for x_axis in ("round", "time"):
        assert paper_lines(figure(rows, "eval/accuracy", x_axis, paper=True)) == [
            ("paper: fedavg 56.9", [56.9, 56.9])
        ]
    assert paper_lines(figure(rows, "eval/accuracy", "round")) == []


def test_round_axis_has_whole_rounds_only(uri, sweep):
    from fedlm.report.plots import figure

    rows = summarize(group_runs(load_runs(uri, "sweep")[0]), STUDY)
    ticks = figure(rows, "eval/accuracy", "round").axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_the_time_axis_is_running_time_without_the_interruption_of_a_resumed_run(tmp_path):
    from fedlm.report.plots import figure
    from fedlm.report.run_statistics import points

    # Rounds of 30 s, evaluations of 10 s after rounds 0, 2 and 4, and 10 hours standing still
    # after round 2 before the run was resumed from its round-2 checkpoint.
    run = record(gap_after=2, tags={"fedlm.resumes": "1", "fedlm.resumed_from_round": "2"})
    assert points(run, "eval/accuracy") == [(0, 0.0, 10.0), (2, 0.25, 80.0), (4, 0.5, 150.0)]
    study = Study(name="t")
    rows = summarize(group_runs([run]), study)
    assert rows[0].values["wall_minutes"] == pytest.approx([(4 * 60 + HOURS_10 + 30) / 60])
    assert rows[0].values["train_minutes"] == pytest.approx([2.0])  # 4 x 30 s
    assert rows[0].values["running_minutes"] == pytest.approx([2.5])  # + 3 x 10 s
    text = markdown(rows, study)
    assert "| wall time min | training time min | running time min |" in text
    assert "| all runs | 1 | 50.0 | 50.0 | 604.5 | 2.0 | 2.5 |" in text
    assert (
        "Resumed: all runs seed 0 (run r) was interrupted and resumed (1 resume, the last from "
        "round 2): its wall time spans its interruptions; its running time does not." in text
    )
    assert "![eval/accuracy against running time](accuracy_vs_time.png)" in text
    ax = figure(rows, "eval/accuracy", "time").axes[0]
    assert ax.get_xlabel() == (
        "running time (minutes of training and evaluation, interruptions excluded)"
    )
    assert list(ax.lines[0].get_xdata()) == pytest.approx([10 / 60, 80 / 60, 150 / 60])

    # The same from the report's CSV files: the resume tags and eval/seconds travel with them.
    write_report(rows, study, tmp_path / "a", runs=[run])
    (back,) = read_runs(tmp_path / "a")
    assert (back.resumes, back.tags["fedlm.resumed_from_round"]) == (1, "2")
    assert points(back, "eval/accuracy") == pytest.approx(points(run, "eval/accuracy"))
    assert markdown(summarize(group_runs([back]), study), study) == text


def test_a_run_without_round_seconds_is_plotted_against_wall_time():
    from fedlm.report.plots import figure
    from fedlm.report.run_statistics import points

    run = record(gap_after=2)
    del run.history["round/seconds"], run.history["eval/seconds"]
    assert points(run, "eval/accuracy") == [
        (0, 0.0, 0.0),
        (2, 0.25, 120.0),
        (4, 0.5, 240 + HOURS_10),
    ]
    rows = summarize(group_runs([run]), Study(name="t"))
    assert "| 604.5 | – | – |" in markdown(rows, Study(name="t"))
    ax = figure(rows, "eval/accuracy", "time").axes[0]
    assert ax.get_xlabel() == "wall time (minutes since the run started)"


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
