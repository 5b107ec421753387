"""Finding the run to resume, its checkpoints (the newest readable one), and what it has
already logged.

``resume=true`` continues the run whose ``run.json`` is in this output dir's ``checkpoints/``;
``resume=<run id>`` continues that run, wherever it ran (its ``fedlm.checkpoint_dir`` tag says
where its checkpoints are). Either way the config must be the one the run started with, except
for where it runs (:data:`run_info.MAY_CHANGE`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from fedlm.errors import ConfigError, FedlmError
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


def newest_readable(
    checkpoints: CheckpointStore,
    template_state: Any,
    run_id_resumed: str,
    warn: Callable[[str], None],
) -> tuple[Any, str, int] | None:
    """(checkpoint, the run id it was saved by, its round) of the newest checkpoint that can be
    read; None when there is none. One that cannot be read (truncated files, say) is reported
    and, once an older one is read, set aside (``unreadable_round_<n>``); :class:`FedlmError`
    when none of them can be read."""
    unreadable = []
    for round_num in reversed(checkpoints.rounds()):
        path = checkpoints.directory / f"round_{round_num}"
        try:
            checkpoint, run_id = checkpoints.load(template_state, round_num)
            break
        except Exception as error:  # TensorFlow's errors for damaged files vary
            warn(
                f"checkpoint {path} cannot be read ({type(error).__name__}: "
                f"{store.first_line(error)})"
            )
            unreadable.append(round_num)
    else:
        if unreadable:
            raise FedlmError(
                f"no checkpoint of MLflow run {run_id_resumed} in {checkpoints.directory} "
                "can be read (see above): start a new run"
            )
        return None
    if unreadable:
        aside = [str(checkpoints.set_aside(n)) for n in unreadable]
        warn(
            f"resuming from {path}, the newest readable checkpoint (set aside: {', '.join(aside)})"
        )
    return checkpoint, run_id, round_num
