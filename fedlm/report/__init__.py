"""A study's report: runs grouped by their swept settings, statistics over seeds, the paper beside.

    runs (fedlm.tracking.runs.RunRecord)       read from MLflow by fedlm.tracking.runs
    -> groups: one per setting, one finished run per seed               summary.group_runs
    -> per group: final and best accuracy, the study's statistic, rounds to the target,
       wall and training time, each mean +- std over seeds; the paper's number    summary.summarize
    -> report.md, report.csv, accuracy_vs_round.png, accuracy_vs_time.png        write.write_report

The study's published numbers and its statistic come from ``experiments/<study>/paper.yaml``
(:mod:`fedlm.report.study`). Nothing here imports MLflow: the runs come in as plain records, so
every number can be checked on hand-made runs.
"""

from fedlm.report.study import PaperNumber, Scale, Study, find_study, load_study
from fedlm.report.summary import Group, Row, group_runs, run_statistics, summarize, swept_keys
from fedlm.report.write import markdown, table, write_report

__all__ = [
    "Group",
    "PaperNumber",
    "Row",
    "Scale",
    "Study",
    "find_study",
    "group_runs",
    "load_study",
    "markdown",
    "run_statistics",
    "summarize",
    "swept_keys",
    "table",
    "write_report",
]
