"""A sweep's parent run: the MLflow UI shows each sweep's jobs nested under it.

The parent is made once, before any job starts (``fedlm.cli.callbacks``), which also creates a new
SQLite store and the experiment before parallel jobs could race to do it. It is tagged with the
sweep id (the absolute sweep dir, also on every job's run), the sweep's overrides and the keys it
sweeps. Each job finds it by those tags and names it as its parent.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlflow
from mlflow.entities import Run

from fedlm.tracking import run_info, store

PARENT_TAG = "fedlm.sweep.parent"
KEYS_TAG = "fedlm.sweep.keys"  # on the parent: the keys the sweep varies
VALUES_TAG = "fedlm.sweep.values"  # on each job's run: its values of those keys


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
) -> str:
    """Create (or, for a resumed sweep, re-open) the parent run of ``sweep``; return its id."""
    uri = store.resolve_uri(uri)
    client, experiment_id = store.prepare_store(uri, experiment_name)
    parent = find_parent(client, experiment_id, sweep)
    if parent is not None:
        client.update_run(parent.info.run_id, status="RUNNING")
        return parent.info.run_id
    run = client.create_run(
        experiment_id,
        run_name=("sweep " + " ".join(swept_keys))[:250],
        tags={
            run_info.SWEEP_TAG: sweep,
            PARENT_TAG: "true",
            "fedlm.sweep.overrides": " ".join(overrides)[:5000],
            KEYS_TAG: " ".join(swept_keys)[:5000],
            **run_info.git_state(),
        },
    )
    return run.info.run_id


def end_sweep(
    uri: str | None, experiment_name: str, sweep: str, failed: bool = False
) -> str | None:
    """Mark the parent FINISHED when every job's run finished (and the sweep itself did not fail:
    ``failed``, e.g. its launcher raised), else FAILED; return the status."""
    client, experiment_id = store.prepare_store(store.resolve_uri(uri), experiment_name)
    parent = find_parent(client, experiment_id, sweep)
    if parent is None:
        return None
    parent_id = parent.info.run_id
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`{run_info.PARENT_RUN_TAG}` = '{parent_id}'"
    )
    ok = not failed and all(run.info.status == "FINISHED" for run in children)
    status = "FINISHED" if ok else "FAILED"
    with store.quiet_urls():
        client.set_terminated(parent_id, status)
    return status


def _quoted(value: str) -> str:
    """A string literal for MLflow's filter syntax (which has no escapes: pick the other quote)."""
    return f'"{value}"' if "'" in value else f"'{value}'"
