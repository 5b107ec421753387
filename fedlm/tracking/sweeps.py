"""A sweep's parent run: the MLflow UI shows each sweep's jobs nested under it.

The parent is made once, before any job starts (``fedlm.cli.callbacks``), which also creates a new
SQLite store and the experiment before parallel jobs could race to do it. It is tagged with the
sweep id (the absolute sweep dir, also on every job's run), the sweep's overrides and the keys it
sweeps. Each job finds it by those tags and names it as its parent.

When the sweep ends, or fails, the parent summarises its children: a table of them (name, status,
final and best ``eval/accuracy``) as its description and as ``report.md``, and the best child's
summary metrics (by final accuracy, what ``fedlm-train`` returns to a sweeper: its final and best
accuracy, rounds and running time) as its own, so that sweeps sort beside single runs.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Mapping, Sequence

import mlflow
from mlflow.entities import Metric, Param, Run

from fedlm.tracking import run_info, store, summary
from fedlm.tracking.runs import REPORT_TAG

PARENT_TAG = "fedlm.sweep.parent"
KEYS_TAG = "fedlm.sweep.keys"  # on the parent: the keys the sweep varies
VALUES_TAG = "fedlm.sweep.values"  # on each job's run: its values of those keys
BEST_RUN_TAG = "fedlm.sweep.best_run"  # on the parent: the id of its best child
OVERRIDES_TAG = "fedlm.sweep.overrides"  # on the parent: the sweep's command line (shell-quoted)
METRIC = summary.METRIC


def find_parent(client: mlflow.MlflowClient, experiment_id: str, sweep: str) -> Run | None:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{run_info.SWEEP_TAG}` = {_quoted(sweep)} "
        f"and tags.`{PARENT_TAG}` = 'true'",
        max_results=1,
    )
    return runs[0] if runs else None


def start_sweep(
    uri: str | None,
    experiment_name: str,
    sweep: str,
    overrides: Sequence[str],
    swept_keys: Sequence[str],
    swept_values: Mapping[str, str] | None = None,
) -> str:
    """Create (or, for a resumed sweep, re-open) the parent run of ``sweep``; return its id.

    ``swept_values``: each swept key's values as the sweep gives them (``sgd,adam``), logged as
    the parent's params."""
    uri = store.resolve_uri(uri)
    client, experiment_id = store.prepare_store(uri, experiment_name)
    parent = find_parent(client, experiment_id, sweep)
    if parent is not None:
        client.update_run(parent.info.run_id, status="RUNNING")
        return parent.info.run_id
    run = client.create_run(
        experiment_id,
        run_name=run_info.sweep_name(swept_keys),
        tags={
            run_info.SWEEP_TAG: sweep,
            PARENT_TAG: "true",
            OVERRIDES_TAG: shlex.join(overrides)[:5000],
            KEYS_TAG: " ".join(swept_keys)[:5000],
            run_info.DESCRIPTION_TAG: run_info.description(overrides, multirun=True)[:5000],
            **run_info.git_state(),
            **run_info.source_tags(),
        },
    )
    params = [
        Param(key, run_info.param_value(value)) for key, value in (swept_values or {}).items()
    ]
    if params:
        client.log_batch(run.info.run_id, params=params[:100])
    return run.info.run_id


def end_sweep(
    uri: str | None, experiment_name: str, sweep: str, failed: bool = False
) -> str | None:
    """Mark the parent FINISHED when every job's run finished (and the sweep itself did not fail:
    ``failed``, e.g. its launcher raised), else FAILED, after summarising its children; return
    the status."""
    client, experiment_id = store.prepare_store(store.resolve_uri(uri), experiment_name)
    parent = find_parent(client, experiment_id, sweep)
    if parent is None:
        return None
    parent_id = parent.info.run_id
    nested = client.search_runs(
        [experiment_id], filter_string=f"tags.`{run_info.PARENT_RUN_TAG}` = '{parent_id}'"
    )
    # A report of the sweep (fedlm-report) is nested under it too, but is not one of its jobs.
    children = [run for run in nested if run.data.tags.get(REPORT_TAG) != "true"]
    ok = not failed and all(run.info.status == "FINISHED" for run in children)
    status = "FINISHED" if ok else "FAILED"
    try:
        summarise(client, parent, children, status)
    except Exception as error:  # the summary is a convenience: the status is set regardless
        print(f"fedlm: warning: could not summarise sweep {sweep}: {error}", file=sys.stderr)
    with store.quiet_urls():
        client.set_terminated(parent_id, status)
    return status


def child_summaries(client: mlflow.MlflowClient, children: Sequence[Run]) -> list[dict]:
    """Each child's job number, name, status and summary metrics (:mod:`summary`: of
    ``eval/accuracy``, rounds and running time), in job order."""
    rows = []
    for run in children:
        history = {
            key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for key in (METRIC, summary.ROUND_SECONDS, summary.EVAL_SECONDS)
            if key in run.data.metrics
        }
        job = run.data.tags.get("fedlm.sweep.job", "")
        rows.append(
            {
                "job": int(job) if job.isdigit() else None,
                "run_id": run.info.run_id,
                "name": run.info.run_name or run.info.run_id,
                "status": run.info.status,
                **summary.summary_metrics(history),
            }
        )
    return sorted(rows, key=lambda row: (row["job"] is None, row["job"] or 0, row["name"]))


def best_child(rows: Sequence[dict]) -> dict | None:
    """The child with the highest final accuracy (what fedlm-train returns to a sweeper)."""
    scored = [row for row in rows if summary.FINAL in row]
    return max(scored, key=lambda row: row[summary.FINAL]) if scored else None


def report(name: str, sweep: str, rows: Sequence[dict], status: str) -> str:
    """The parent's table of its children (markdown)."""
    best = best_child(rows)
    finished = sum(row["status"] == "FINISHED" for row in rows)
    lines = [
        f"# {name}",
        "",
        f"Sweep `{sweep}`, {status.lower()}: {len(rows)} job(s), {finished} finished.",
    ]
    if best is not None:
        lines.append(
            f"Best by final {METRIC}: **{best['name']}** (run `{best['run_id']}`), "
            f"{best[summary.FINAL]:.4f}."
        )
    lines += [
        "",
        f"| job | run | status | final {METRIC} | best {METRIC} (round) |",
        "|---:|---|---|---:|---:|",
    ]
    for row in rows:
        final = f"{row[summary.FINAL]:.4f}" if summary.FINAL in row else ""
        top = (
            f"{row[summary.BEST]:.4f} ({row[summary.BEST_ROUND]:.0f})"
            if summary.BEST in row
            else ""
        )
        job = "" if row["job"] is None else str(row["job"])
        lines.append(f"| {job} | {row['name']} | {row['status']} | {final} | {top} |")
    return "\n".join(lines) + "\n"


def summarise(client: mlflow.MlflowClient, parent: Run, children: Sequence[Run], status: str):
    """The parent's report.md, description and metrics from its children."""
    parent_id = parent.info.run_id
    rows = child_summaries(client, children)
    text = report(parent.info.run_name, parent.data.tags[run_info.SWEEP_TAG], rows, status)
    client.log_text(parent_id, text, "report.md")
    overrides = run_info.override_list({"hydra.overrides": parent.data.tags.get(OVERRIDES_TAG)})
    note = run_info.description(overrides, multirun=True, note=text)
    client.set_tag(parent_id, run_info.DESCRIPTION_TAG, note[:5000])
    now = int(time.time() * 1000)
    metrics = [
        Metric("sweep/jobs", float(len(rows)), now, 0),
        Metric("sweep/finished", float(sum(r["status"] == "FINISHED" for r in rows)), now, 0),
    ]
    best = best_child(rows)
    if best is not None:
        client.set_tag(parent_id, BEST_RUN_TAG, best["run_id"])
        metrics += [Metric(key, best[key], now, 0) for key in summary.KEYS if key in best]
    client.log_batch(parent_id, metrics=metrics)


def _quoted(value: str) -> str:
    """A string literal for MLflow's filter syntax (which has no escapes: pick the other quote)."""
    return f'"{value}"' if "'" in value else f"'{value}'"
