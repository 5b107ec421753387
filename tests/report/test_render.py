"""The report as one self-contained HTML page.

Made on runs in a temporary MLflow store (the ``uri`` and ``sweep`` fixtures of
conftest.py) or by hand (report_runs.py)."""

from report_runs import STUDY

from fedlm.report import (
    group_runs,
    summarize,
    write_report,
)
from fedlm.tracking.runs import load_runs


def test_html_report_holds_its_tables_caveat_and_plots(uri, sweep, tmp_path):
    runs, _ = load_runs(uri, "sweep")
    write_report(summarize(group_runs(runs), STUDY), STUDY, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<strong>Not comparable with the paper.</strong>" in page
    assert "<th><span>paper (not comparable: server_optimizer.learning_rate)</span></th>" in page
    assert "<td>server_optimizer=sgdm</td><td>2</td><td>52.0 ± 2.8</td>" in page
    assert page.count('<img src="data:image/png;base64,') == 2  # nothing to fetch beside it
