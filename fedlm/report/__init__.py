"""A study's report: runs grouped by their swept settings, statistics over seeds, the paper beside.

    runs (fedlm.tracking.runs.RunRecord)  from MLflow (fedlm.tracking.runs), or from a report's
                                          runs.csv and histories.csv (histories.read_runs)
    -> groups: one per setting, one finished run per seed (with --include-unfinished, a seed
       without one counts its newest unfinished run)                    summary.group_runs
    -> per run and metric: final and best value and the study's statistic (a mean over the
       last rounds with the standard deviation and number of the evaluations it averages); rounds
       to the target (first crossing, and for good), wall, training and running time (times)
                                                        run_statistics.metric_statistics, ...
    -> per group: each of those mean +- std over seeds; the paper's number and the paper
       settings the runs do not share                                         summary.summarize
    -> the methods comparable with the paper ranked beside its ranking          ranking.ranking
    -> the report as blocks (tables; the caveat, notes, paper's numbers and differences from
       the paper: notes)                                                       document.blocks
       written as Markdown and as one HTML page                    render.to_markdown, to_html
    -> report.md, report.html, report.csv, <metric>_vs_round.png, <metric>_vs_time.png, and the
       runs behind them: runs.csv, histories.csv                                 write.write_report

The study's published numbers and its statistic come from ``experiments/<study>/paper.yaml``
(:mod:`fedlm.report.study`). Nothing here imports MLflow: the runs come in as plain records, so
every number can be checked on hand-made runs.
"""

from fedlm.report.histories import read_runs
from fedlm.report.render import table
from fedlm.report.run_statistics import metric_statistics, run_statistics
from fedlm.report.study import PaperNumber, Scale, Study, find_study, load_study
from fedlm.report.summary import Difference, Group, Row, group_runs, summarize, swept_keys
from fedlm.report.write import markdown, write_report

__all__ = [
    "Difference",
    "Group",
    "PaperNumber",
    "Row",
    "Scale",
    "Study",
    "find_study",
    "group_runs",
    "load_study",
    "markdown",
    "metric_statistics",
    "read_runs",
    "run_statistics",
    "summarize",
    "swept_keys",
    "table",
    "write_report",
]
