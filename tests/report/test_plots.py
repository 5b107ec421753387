"""The paper's number as a line on the accuracy plots, beside the settings comparable with it."""

from fedlm.report.plots import figure
from fedlm.report.study import PaperNumber
from fedlm.report.summary import Difference, Group, Row
from fedlm.tracking.runs import RunRecord


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
