"""``fedlm-report``: a study's runs from MLflow, as a table beside the paper's numbers, and plots.

    uv run fedlm-report EXPERIMENT [--tracking-uri URI] [--out DIR] [--study PAPER_YAML]
                        [--by KEY ...] [--metric METRIC ...] [--filter MLFLOW_FILTER]
                        [--runs-from DIR ...] [--and-store] [--include-unfinished] [--no-log]

EXPERIMENT is the MLflow experiment the study logs to (its ``tracking.experiment_name``, e.g.
``reddi2021``). The runs are grouped by the settings they sweep (``--by`` names them instead), and
the report (report.md, report.html, report.csv, plots, and the runs behind it as runs.csv and
histories.csv) goes to ``results/reports/EXPERIMENT/`` under the results folder (a study's
committed ``experiments/EXPERIMENT/report/`` only when ``--out`` names it), and into a summary run
of the experiment (``--no-log``: not). ``--runs-from`` makes the report from report folders'
runs.csv and histories.csv instead of the store; ``--and-store`` adds the store's runs to theirs (a
run in both: its longer history), so a committed report grows by the runs made since on this
machine. ``--include-unfinished`` counts runs still running, killed or failed (a seed's newest,
where it has no finished run) in an interim report, to follow a long run. Plain argparse: no config
composition is needed for a handful of flags.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fedlm import paths
from fedlm.cli.common import report_errors

PROG = "fedlm-report"
# Short names for the evaluation metrics every run logs; any logged metric key is accepted too.
METRIC_NAMES = {
    "accuracy": "eval/accuracy",
    "loss": "eval/loss",
    "perplexity": "eval/perplexity",
    "bits_per_char": "eval/bits_per_char",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="the MLflow experiment (a study's tracking.experiment_name)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store or server (default: the SQLite store under the results directory)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for the report (default: results/reports/EXPERIMENT under the results "
        "folder; a study's committed report is written only when named here)",
    )
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
        "--metric",
        action="extend",
        nargs="+",
        default=None,
        metavar="METRIC",
        help="the metrics to report, the first with the times and the paper's numbers "
        f"({', '.join(METRIC_NAMES)}, or a logged key such as eval/loss; "
        "default: the study's metric)",
    )
    p.add_argument(
        "--runs-from",
        nargs="+",
        default=None,
        metavar="DIR",
        help="make the report from DIR/runs.csv and DIR/histories.csv (report folders), "
        "not from MLflow",
    )
    p.add_argument(
        "--and-store",
        action="store_true",
        help="with --runs-from: add the MLflow store's runs (--tracking-uri, --filter) to the "
        "folders'; a run in both counts once, with the longer history",
    )
    p.add_argument(
        "--filter",
        default="",
        help="an MLflow search filter, e.g. \"params.experiment_scale = 'quick'\"",
    )
    p.add_argument(
        "--include-unfinished",
        action="store_true",
        help="count runs that have not finished (running, killed, failed) where a seed has no "
        "finished run: an interim report, marked as such; statistics of rounds a run has not "
        "reached are left empty",
    )
    p.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    return p


def default_out_dir(experiment: str) -> Path:
    """Under the results folder, never a study's committed report (that takes ``--out``)."""
    return paths.results_dir() / "reports" / experiment


def relative_store(uri: str) -> str:
    """A SQLite store's URI with its path relative to the working directory, or else to the
    project, where it lies inside one (a committed report names no machine's folders)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri[len(prefix) :])
    for base in (Path.cwd(), paths.PROJECT_ROOT):
        if path.is_absolute() and path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return uri


def metric_keys(names: list[str] | None, default: str) -> list[str]:
    """The metric keys ``--metric`` names (short names resolved), in order, without repeats."""
    from fedlm.errors import ConfigError

    keys = []
    for name in names or [default]:
        key = METRIC_NAMES.get(name, name)
        if "/" not in key:
            raise ConfigError(
                "--metric", name, f"{', '.join(METRIC_NAMES)} or a key like eval/loss"
            )
        keys.append(key)
    return list(dict.fromkeys(keys))


@report_errors(PROG)
def run(args: argparse.Namespace) -> None:
    from fedlm.errors import ConfigError, FedlmError
    from fedlm.report import find_study, group_runs, read_runs, summarize, table, write_report
    from fedlm.report.histories import merge_runs
    from fedlm.tracking.runs import load_runs, log_report

    study = find_study(args.experiment, args.study)
    metrics = metric_keys(args.metric, study.metric)
    if args.and_store and not args.runs_from:
        raise ConfigError("--and-store", True, "together with --runs-from DIR")
    if args.runs_from and not args.and_store and (args.tracking_uri or args.filter):
        raise ConfigError(
            "--runs-from", args.runs_from, "without --tracking-uri and --filter (or --and-store)"
        )
    sources, places = [], []
    for folder in args.runs_from or []:
        sources.append(read_runs(folder))
        places.append(f"`{Path(folder) / 'runs.csv'}`")
    if args.and_store or not args.runs_from:
        stored, shown_uri = load_runs(args.tracking_uri, args.experiment, args.filter, metrics)
        sources.append(stored)
        places.append(f"MLflow experiment `{args.experiment}` in `{relative_store(shown_uri)}`")
    runs, where = merge_runs(*sources), " and ".join(places)
    if not runs:
        raise FedlmError(
            f"{where} holds no training runs"
            + (f" that match --filter {args.filter!r}" if args.filter else "")
        )
    logged = sorted({k for run in runs for k in run.history if k.startswith("eval/")})
    for key in metrics:
        if not any(run.history.get(key) for run in runs):
            raise ConfigError("--metric", key, f"a metric the runs logged: {', '.join(logged)}")
    rows = summarize(group_runs(runs, args.by, args.include_unfinished), study, metrics)
    out_dir = Path(args.out) if args.out else default_out_dir(args.experiment)
    plural = "s" if len(runs) != 1 else ""
    source = (
        f"{len(runs)} run{plural} of {where}"
        + (f" matching `{args.filter}`" if args.filter else "")
        + f", read {time.strftime('%Y-%m-%d %H:%M')} by `{args.command}`."
    )
    files = write_report(rows, study, out_dir, source, runs)
    print("\n".join(table(rows, study)))
    print("\nwrote: " + ", ".join(str(f) for f in files))
    if not args.no_log and (args.and_store or not args.runs_from):
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
