"""The runs behind a report as two CSV files, so that every number can be checked without the store.

``runs.csv``: one line per run read (counted or not): its id, name, status, start and end time
(seconds since the epoch), the setting it was grouped under and whether it was counted (or why
not), then every param (``param.<key>``), the job's overrides (``tag.override.<key>``) and how
often the run was resumed (``tag.fedlm.resumes``, ``tag.fedlm.resumed_from_round``), the round it
stopped at its target (``tag.fedlm.stopped_at_round``), the runs it continues when it was carried
from another machine (``tag.fedlm.continues``, fedlm.tracking.carry), and always
what its result depends on beyond its config: the git commit of the code
(``tag.mlflow.source.git.commit``, with ``tag.fedlm.git.dirty``), the model's parameter count
(``tag.fedlm.model.parameters``) and vocabulary size (``tag.fedlm.model.vocab_size``), and the data
build's parser version and source SHA-256 (``tag.fedlm.data.parser_version``,
``tag.fedlm.data.source_sha256``). An empty cell is a param or tag the run did not log (a run made
before fedlm logged it); files written before a column existed read the same.

``histories.csv``: one line per logged point of the metrics the report reads: run id, metric,
round (MLflow's step), value (as logged, full precision) and time (seconds since the epoch); the
metrics include ``round/seconds`` and ``eval/seconds``, from which the report's running time comes.

``fedlm-report --runs-from FOLDER`` makes the report again from these two files alone; with
several folders, or with ``--and-store``, the runs of every source are merged (:func:`merge_runs`),
so that a study whose runs were made on machines that no longer exist is reported whole.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from fedlm.errors import FedlmError
from fedlm.io import atomic_path
from fedlm.tracking.runs import (
    COMMAND_LINE_TAG,
    CONTINUES_TAG,
    OVERRIDE_PREFIX,
    PROVENANCE_TAGS,
    RESUMED_FROM_TAG,
    RESUMES_TAG,
    STOPPED_AT_TAG,
    RunRecord,
)

RUNS_CSV = "runs.csv"
HISTORIES_CSV = "histories.csv"
FIXED = ("run_id", "name", "status", "start_time", "end_time", "setting", "counted")
PARAM, TAG = "param.", "tag."
# besides the overrides, if logged
KEPT_TAGS = (RESUMES_TAG, RESUMED_FROM_TAG, STOPPED_AT_TAG, COMMAND_LINE_TAG, CONTINUES_TAG)


def write_runs(
    runs: Sequence[RunRecord], out_dir: str | Path, roles: Mapping[str, tuple[str, str]]
) -> list[Path]:
    """``runs.csv`` and ``histories.csv`` of ``runs`` in ``out_dir``; ``roles`` maps a run id to
    (its setting's label, "yes" or why it was left out)."""
    out_dir = Path(out_dir)
    param_keys = sorted({k for run in runs for k in run.params})
    kept = {k for run in runs for k in run.tags if k.startswith(OVERRIDE_PREFIX) or k in KEPT_TAGS}
    tag_keys = [*PROVENANCE_TAGS, *sorted(kept)]
    header = [*FIXED, *(PARAM + k for k in param_keys), *(TAG + k for k in tag_keys)]
    lines = []
    for run in runs:
        setting, counted = roles.get(run.run_id, ("", "not grouped"))
        fixed = [run.run_id, run.name, run.status, _time(run.start_time), _time(run.end_time)]
        lines.append(
            [
                *fixed,
                setting,
                counted,
                *(run.params.get(k, "") for k in param_keys),
                *(run.tags.get(k, "") for k in tag_keys),
            ]
        )
    _write_csv(out_dir / RUNS_CSV, header, lines)
    points = [
        [run.run_id, metric, step, _value(value), _time(t)]
        for run in runs
        for metric in sorted(run.history)
        for step, value, t in run.history[metric]
    ]
    _write_csv(out_dir / HISTORIES_CSV, ["run_id", "metric", "round", "value", "time"], points)
    return [out_dir / RUNS_CSV, out_dir / HISTORIES_CSV]


def read_runs(folder: str | Path) -> list[RunRecord]:
    """The runs that :func:`write_runs` wrote to ``folder``, in the order written."""
    folder = Path(folder)
    for name in (RUNS_CSV, HISTORIES_CSV):
        if not (folder / name).is_file():
            raise FedlmError(
                f"--runs-from {folder}: no {name} there (a report folder written by "
                "fedlm-report holds runs.csv and histories.csv)"
            )
    runs: dict[str, RunRecord] = {}
    with (folder / RUNS_CSV).open(newline="", encoding="utf-8") as f:
        for line in csv.DictReader(f):
            runs[line["run_id"]] = RunRecord(
                run_id=line["run_id"],
                name=line["name"],
                status=line["status"],
                params=_prefixed(line, PARAM),
                tags=_prefixed(line, TAG),
                start_time=_float(line["start_time"]),
                end_time=_float(line["end_time"]),
            )
    with (folder / HISTORIES_CSV).open(newline="", encoding="utf-8") as f:
        for line in csv.DictReader(f):
            if line["run_id"] not in runs:
                raise FedlmError(
                    f"{folder / HISTORIES_CSV}: run {line['run_id']} is not in {RUNS_CSV}"
                )
            history = runs[line["run_id"]].history.setdefault(line["metric"], [])
            history.append((int(line["round"]), float(line["value"]), float(line["time"])))
    for run in runs.values():
        for points in run.history.values():
            points.sort()
    return list(runs.values())


def last_round(run: RunRecord) -> int:
    """The last round ``run`` logged anything for (0 for none)."""
    return max((points[-1][0] for points in run.history.values() if points), default=0)


def merge_runs(*sources: Sequence[RunRecord]) -> list[RunRecord]:
    """The runs of every source, once each: where several sources hold the same run (a run
    committed as a report's CSVs and still going on in the store; or carried to another machine,
    where it goes on under a new id: the same lineage), the one that reached the latest round,
    and of equals the later source's. In the order first seen."""
    merged: dict[str, RunRecord] = {}
    for runs in sources:
        for run in runs:
            held = merged.get(run.lineage)
            if held is None or last_round(run) >= last_round(held):
                merged[run.lineage] = run
    return list(merged.values())


def _prefixed(line: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix) :]: v for k, v in line.items() if k.startswith(prefix) and v != ""}


def _value(value: float) -> str:
    # MLflow's SQLite store keeps an infinite value (epsilon without noise) as the largest float.
    value = float(value)
    return repr(math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value)


def _time(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.3f}"


def _float(text: str) -> float | None:
    return float(text) if text else None


def _write_csv(path: Path, header: Sequence[str], lines: Iterable[Sequence[object]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(lines)
    path.chmod(0o644)
