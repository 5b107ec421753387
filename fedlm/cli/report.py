"""``fedlm-report``: a study's runs from MLflow, as a table beside the paper's numbers, and plots.

    uv run fedlm-report EXPERIMENT [--tracking-uri URI] [--out DIR] [--study PAPER_YAML]
                        [--by KEY ...] [--filter MLFLOW_FILTER] [--histories] [--no-log]

EXPERIMENT is the MLflow experiment the study logs to (its ``tracking.experiment_name``, e.g.
``reddi2021``). The runs are grouped by the settings they sweep (``--by`` names them instead), and
the table, CSV and plots go to ``experiments/EXPERIMENT/report/`` (for a study there) or
``results/reports/EXPERIMENT/``, and into a summary run of the experiment (``--no-log``: not).
Plain argparse: no config composition is needed for a handful of flags.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fedlm import paths
from fedlm.cli.common import report_errors

PROG = "fedlm-report"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="the MLflow experiment (a study's tracking.experiment_name)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store or server (default: the SQLite store under the results directory)",
    )
    p.add_argument("--out", default=None, help="folder for the report (default: see above)")
    p.add_argument(
        "--study",
        default=None,
        help="the paper file (default: experiments/EXPERIMENT/paper.yaml when it exists)",
    )
    p.add_argument(
        "--by",
        nargs="+",
        default=None,
        metavar="KEY",
        help="group by these settings (override or param keys, e.g. server_optimizer.name) "
        "instead of the ones the runs sweep",
    )
    p.add_argument(
        "--filter",
        default="",
        help="an MLflow search filter, e.g. \"params.experiment_scale = 'quick'\"",
    )
    p.add_argument(
        "--histories",
        action="store_true",
        help="also write histories.csv: every metric of every counted run, per round",
    )
    p.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    return p


def default_out_dir(experiment: str) -> Path:
    study_dir = paths.PROJECT_ROOT / "experiments" / experiment
    if study_dir.is_dir():
        return study_dir / "report"
    return paths.results_dir() / "reports" / experiment


@report_errors(PROG)
def run(args: argparse.Namespace) -> None:
    from fedlm.errors import FedlmError
    from fedlm.report import find_study, group_runs, summarize, table, write_report
    from fedlm.tracking.runs import load_runs, log_report

    study = find_study(args.experiment, args.study)
    runs, shown_uri = load_runs(
        args.tracking_uri, args.experiment, args.filter, all_metrics=args.histories
    )
    if not runs:
        raise FedlmError(
            f"experiment {args.experiment!r} in {shown_uri} holds no training runs"
            + (f" that match --filter {args.filter!r}" if args.filter else "")
        )
    rows = summarize(group_runs(runs, args.by), study)
    out_dir = Path(args.out) if args.out else default_out_dir(args.experiment)
    plural = "s" if len(runs) != 1 else ""
    source = (
        f"{len(runs)} run{plural} of MLflow experiment `{args.experiment}` in `{shown_uri}`"
        + (f" matching `{args.filter}`" if args.filter else "")
        + f", read {time.strftime('%Y-%m-%d %H:%M')} by `{args.command}`."
    )
    files = write_report(rows, study, out_dir, source, histories=args.histories)
    print("\n".join(table(rows, study)))
    print("\nwrote: " + ", ".join(str(f) for f in files))
    if not args.no_log:
        counted = [run.run_id for row in rows for run in row.group.runs]
        summary = log_report(
            args.tracking_uri,
            args.experiment,
            out_dir,
            counted,
            tags={"fedlm.report.study": study.name},
        )
        print(f"logged to MLflow run {summary} (artifacts: report/)")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.command = " ".join([PROG, *(sys.argv[1:] if argv is None else argv)])
    run(args)


if __name__ == "__main__":
    main()
