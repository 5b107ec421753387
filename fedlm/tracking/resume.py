"""Finding the run to resume, its checkpoints, and what it has already logged.

``resume=true`` continues the run whose ``run.json`` is in this output dir's ``checkpoints/``;
``resume=<run id>`` continues that run, wherever it ran (its ``fedlm.checkpoint_dir`` tag says
where its checkpoints are). Either way the config must be the one the run started with, except
for where it runs (:data:`run_info.MAY_CHANGE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from fedlm.errors import ConfigError
from fedlm.tracking import run_info, store
from fedlm.tracking.checkpoints import CheckpointStore


def run_id_to_resume(resume: Any, checkpoints: CheckpointStore) -> str:
    """The MLflow run id that ``resume`` (true or a run id) names."""
    if resume is True:
        recorded = checkpoints.read_run()
        if recorded is None:
            raise ConfigError(
                "resume",
                True,
                f"an output directory with a run to resume, and {checkpoints.directory} holds "
                "none (resume=true continues the run of the same output directory: pass "
                "hydra.run.dir=<that run's directory>, or resume=<MLflow run id>)",
            )
        return recorded["run_id"]
    if isinstance(resume, str) and resume.strip():
        return resume.strip()
    raise ConfigError("resume", resume, "false, true or an MLflow run id (quoted if numeric)")


def get_run(client: mlflow.MlflowClient, uri: str, resume: Any, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(
            "resume",
            resume,
            f"the id of a run in {store.mask_uri(uri)} ({run_id} is not there: "
            f"{error.message.splitlines()[0]})",
        ) from error


def checkpoints_of(run: Run, here: CheckpointStore, resume: Any) -> CheckpointStore:
    """The checkpoint folder of ``run``: ``here`` if its run.json names the run, else the one the
    run's tag records (``resume=<run id>`` from another output dir)."""
    candidates = [here]
    tagged = run.data.tags.get(run_info.CHECKPOINT_DIR_TAG)
    if tagged:
        candidates.append(CheckpointStore(tagged, keep=here.keep))
    for checkpoints in candidates:
        recorded = checkpoints.read_run()
        if recorded is not None and recorded["run_id"] == run.info.run_id:
            return checkpoints
    raise ConfigError(
        "resume",
        resume,
        f"a run whose checkpoint folder is still there: run {run.info.run_id} recorded "
        f"{tagged or here.directory}, which holds no run.json of that run",
    )


def check_same_config(logged: Mapping[str, str], current: Mapping[str, str], resume: Any) -> None:
    changed = [
        key
        for key in sorted(current)
        if key in logged and logged[key] != current[key] and not key.startswith(run_info.MAY_CHANGE)
    ]
    if changed:
        shown = ", ".join(f"{k}: {logged[k]} -> {current[k]}" for k in changed[:5])
        raise ConfigError(
            "resume",
            resume,
            f"the same config as the run being resumed, which differs in {len(changed)} "
            f"key(s): {shown}",
        )


def logged_steps(client: mlflow.MlflowClient, run: Run) -> set[tuple[str, int]]:
    """Every (metric, step) pair the run holds."""
    return {
        (key, metric.step)
        for key in run.data.metrics
        for metric in client.get_metric_history(run.info.run_id, key)
    }
