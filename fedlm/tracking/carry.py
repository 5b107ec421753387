"""Carrying an unfinished run to another machine: a pack folder that can be committed.

A run's checkpoints and its MLflow store live on the machine that ran it; a long study outlives
machines. ``fedlm-carry RUN_ID --to DIR`` writes ``DIR/<run id>/``, everything the run needs to
go on elsewhere, in plain files:

- ``run.json``: its experiment, name, status, start time, params and tags;
- ``metrics.csv``: every point it logged (metric, step, value, timestamp in ms), full precision;
- ``config.yaml``: the resolved config it logged, when there is one;
- ``checkpoints/round_<n>/``: its newest complete checkpoint (TFF's program state: model weights,
  server optimizer state, round, sampler state), with the ``run.json`` naming the run.

On any machine, ``fedlm-train <the run's overrides> resume=DIR/<run id>`` unpacks it
(:func:`unpack`): the run is made again in that machine's store, with the same params, tags,
metrics and start time; MLflow gives it a new id, and its ``fedlm.continues`` tag lists the ids
it continues, oldest first (a run carried twice names both). Its checkpoint is copied into the
new output folder, and the run resumes from it as any resumed run does: the rounds after the
checkpoint run again and log only what is not logged yet, so the carried run ends as the
uninterrupted one would (tests/tracking/test_carry.py). A pack already unpacked into a store is
not unpacked again: the second ``resume=DIR`` continues the run the first made; and on the machine
the pack was made on, where the run and its checkpoints are still there, ``resume=DIR`` continues
the run itself, from its newest checkpoint.

Reports count a run and those it continues as one run (``fedlm.tracking.runs.lineage``,
``fedlm.report.histories.merge_runs``). Packing writes a new folder beside the old and renames it
into place, and removes packs in ``DIR`` of the runs the packed run continues (git keeps them).
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException

from fedlm.errors import ConfigError, FedlmError
from fedlm.io import write_text
from fedlm.tracking import run_info
from fedlm.tracking.checkpoints import PREFIX, RUN_FILE, CheckpointStore
from fedlm.tracking.runs import CONTINUES_TAG, lineage

PACK_FILE = "run.json"
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
CHECKPOINTS = "checkpoints"
FORMAT = 1
CARRIED_FROM_TAG = "fedlm.carried_from"  # the pack this run was unpacked from: "<run id>@<round>"
# Tags that describe where a run ran, not the run: the unpacked run gets its own.
LOCAL_TAGS = (
    run_info.CHECKPOINT_DIR_TAG,
    "fedlm.output_dir",
    "fedlm.last_output_dir",
    run_info.PARENT_RUN_TAG,  # a sweep's parent run stays in the store it was made in
    run_info.RUN_NAME_TAG,  # given as the run's name
    CARRIED_FROM_TAG,
)
LOG_BATCH = 1000  # MLflow takes at most 1000 metrics per call


def is_pack(value: object) -> bool:
    """Whether ``resume``'s value names a pack folder (a path holding a pack's run.json)."""
    if not isinstance(value, str) or not value.strip():
        return False
    return (Path(value).expanduser() / PACK_FILE).is_file()


# -- packing ------------------------------------------------------------------------------------


def unfinished_runs(client: mlflow.MlflowClient, experiment_name: str, uri: str) -> list[str]:
    """The ids of the experiment's runs that have not finished and have a checkpoint here."""
    from fedlm.tracking import store

    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ConfigError(
            "--unfinished-of", experiment_name, f"an experiment of {store.mask_uri(uri)}: {names}"
        )
    found = []
    for run in client.search_runs(
        [experiment.experiment_id], "attributes.status != 'FINISHED'", max_results=1000
    ):
        checkpoints = _local_checkpoints(run)
        if checkpoints is not None and checkpoints.rounds():
            found.append(run.info.run_id)
    return found


def pack(client: mlflow.MlflowClient, run_id: str, to: str | Path) -> Path:
    """Write ``to/<run_id>/`` (replacing an older pack of it and of the runs it continues) and
    return it."""
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise FedlmError(f"cannot pack run {run_id}: {error.message.splitlines()[0]}") from error
    checkpoints = _checkpoints_of(run)
    round_num = checkpoints.latest_round()
    if round_num is None:
        raise FedlmError(
            f"cannot pack run {run_id}: {checkpoints.directory} holds no complete checkpoint "
            "(it is written every tracking.checkpoint_every rounds)"
        )
    to = Path(to).expanduser()
    to.mkdir(parents=True, exist_ok=True)
    target = to / run_id
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=to))
    try:
        shutil.copytree(
            checkpoints.directory / f"{PREFIX}{round_num}",
            staging / CHECKPOINTS / f"{PREFIX}{round_num}",
        )
        _write_metrics(client, run, staging / METRICS_FILE)
        _download_config(client, run_id, staging)
        record = {
            "format": FORMAT,
            "run_id": run_id,
            "round": round_num,
            "experiment": client.get_experiment(run.info.experiment_id).name,
            "name": run.info.run_name,
            "status": run.info.status,
            "start_time": run.info.start_time,
            "params": dict(sorted(run.data.params.items())),
            "tags": dict(sorted(run.data.tags.items())),
        }
        write_text(staging / PACK_FILE, json.dumps(record, indent=1) + "\n")
        (staging / PACK_FILE).chmod(0o644)
        staging.chmod(0o755)
        old = to / f".{run_id}.old"
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for earlier in lineage(run.data.tags, run_id)[:-1]:
        shutil.rmtree(to / earlier, ignore_errors=True)
    return target


def _local_checkpoints(run: Run) -> CheckpointStore | None:
    """The run's checkpoint folder (its tag), where it is on this machine and names the run."""
    folder = run.data.tags.get(run_info.CHECKPOINT_DIR_TAG)
    checkpoints = CheckpointStore(folder) if folder else None
    recorded = checkpoints.read_run() if checkpoints else None
    return checkpoints if recorded and recorded["run_id"] == run.info.run_id else None


def _checkpoints_of(run: Run) -> CheckpointStore:
    checkpoints = _local_checkpoints(run)
    if checkpoints is None:
        folder = run.data.tags.get(run_info.CHECKPOINT_DIR_TAG)
        raise FedlmError(
            f"cannot pack run {run.info.run_id}: its checkpoint folder "
            f"({folder or 'not recorded'}) is not on this machine or holds another run's "
            "checkpoints"
        )
    # Nothing removed here: the run may be going on, writing its next checkpoint (TFF's
    # round_<n>_temp folder, which the versions read below leave out).
    return checkpoints


def _write_metrics(client: mlflow.MlflowClient, run: Run, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "step", "value", "timestamp"])
        for key in sorted(run.data.metrics):
            for m in sorted(client.get_metric_history(run.info.run_id, key), key=_order):
                writer.writerow([key, m.step, repr(float(m.value)), m.timestamp])


def _order(metric: Metric) -> tuple[int, int]:
    return metric.step, metric.timestamp


def _download_config(client: mlflow.MlflowClient, run_id: str, folder: Path) -> None:
    # A run made without its config logged: the params hold it all the same.
    from fedlm.tracking.store import mlflow_environment

    quiet = mlflow_environment(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    with contextlib.suppress(Exception), quiet:
        client.download_artifacts(run_id, CONFIG_FILE, str(folder))


# -- unpacking ----------------------------------------------------------------------------------


def read_pack(folder: str | Path, resume: object) -> dict:
    """The pack's record, checked: a clear error for a folder that is not a complete pack."""
    folder = Path(folder).expanduser()
    try:
        record = json.loads((folder / PACK_FILE).read_text(encoding="utf-8"))
        round_num = int(record["round"])
        keys = ("run_id", "experiment", "params", "tags", "start_time")
        missing = [k for k in keys if k not in record]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            "resume", resume, f"a pack folder written by fedlm-carry ({folder}: {error})"
        ) from error
    checkpoint = folder / CHECKPOINTS / f"{PREFIX}{round_num}"
    if missing or record.get("format") != FORMAT or not (checkpoint / "saved_model.pb").is_file():
        why = f"missing {', '.join(missing)}" if missing else f"no checkpoint {checkpoint}"
        if not missing and record.get("format") != FORMAT:
            why = f"format {record.get('format')!r}, this fedlm reads format {FORMAT}"
        raise ConfigError(
            "resume", resume, f"a complete pack folder written by fedlm-carry ({why})"
        )
    if not (folder / METRICS_FILE).is_file():
        raise ConfigError("resume", resume, f"a complete pack folder ({folder / METRICS_FILE})")
    return record


def still_here(client: mlflow.MlflowClient, record: Mapping) -> str | None:
    """The pack's own run, where this store holds it and its checkpoints are on this machine, at
    the pack's round or later (the pack was made here, and the run may have gone on since)."""
    try:
        run = client.get_run(record["run_id"])
    except MlflowException:
        return None
    try:
        checkpoints = _checkpoints_of(run)
    except FedlmError:
        return None
    latest = checkpoints.latest_round()
    return run.info.run_id if latest is not None and latest >= int(record["round"]) else None


def unpacked_run(client: mlflow.MlflowClient, experiment_id: str, record: Mapping) -> str | None:
    """The id of the run this store already made from the pack, if any."""
    mark = f"{record['run_id']}@{record['round']}"
    found = client.search_runs([experiment_id], f"tags.`{CARRIED_FROM_TAG}` = '{mark}'")
    return found[0].info.run_id if found else None


def unpack(
    client: mlflow.MlflowClient,
    experiment_id: str,
    folder: str | Path,
    checkpoints: CheckpointStore,
    resume: object,
    tracking_uri: str = "",
) -> str:
    """Make the pack's run in this store (or find the one made before) with its checkpoint in
    ``checkpoints`` (this job's folder, which must hold no run); return its id."""
    folder = Path(folder).expanduser()
    record = read_pack(folder, resume)
    experiment = client.get_experiment(experiment_id).name
    if record["experiment"] != experiment:
        raise ConfigError(
            "resume",
            resume,
            f"a pack of a run of experiment {experiment!r} (tracking.experiment_name), and "
            f"{folder} holds a run of {record['experiment']!r}",
        )
    here = still_here(client, record)
    if here is not None:  # the machine it was packed on, its run still there: go on with it
        return here
    made = unpacked_run(client, experiment_id, record)
    if made is not None:
        return made
    if checkpoints.read_run() is not None or checkpoints.rounds():
        raise ConfigError(
            "resume",
            resume,
            f"a new output folder to unpack the run into, and {checkpoints.directory} holds "
            "another run's checkpoints (pass hydra.run.dir=<an empty folder>)",
        )
    old_id, round_num = record["run_id"], int(record["round"])
    tags = {k: v for k, v in record["tags"].items() if k not in LOCAL_TAGS}
    tags[CONTINUES_TAG] = " ".join(lineage(record["tags"], old_id))
    tags[CARRIED_FROM_TAG] = f"{old_id}@{round_num}"
    tags[run_info.CHECKPOINT_DIR_TAG] = str(checkpoints.directory.resolve())
    tags["fedlm.output_dir"] = str(checkpoints.directory.resolve().parent)
    run = client.create_run(
        experiment_id,
        start_time=record["start_time"],
        tags={k: v for k, v in tags.items() if k != CARRIED_FROM_TAG},
        run_name=record.get("name"),
    )
    new_id = run.info.run_id
    try:
        params = [Param(k, v) for k, v in record["params"].items()]
        for i in range(0, len(params), 100):
            client.log_batch(new_id, params=params[i : i + 100])
        metrics = _read_metrics(folder / METRICS_FILE)
        for i in range(0, len(metrics), LOG_BATCH):
            client.log_batch(new_id, metrics=metrics[i : i + LOG_BATCH])
        if (folder / CONFIG_FILE).is_file():
            client.log_artifact(new_id, str(folder / CONFIG_FILE))
        checkpoints.directory.mkdir(parents=True, exist_ok=True)
        name = f"{PREFIX}{round_num}"
        shutil.copytree(folder / CHECKPOINTS / name, checkpoints.directory / name)
        checkpoints.write_run(new_id, tracking_uri)
        # Last: until the run is complete, a second resume=DIR does not take it for unpacked.
        client.log_batch(new_id, tags=[RunTag(CARRIED_FROM_TAG, tags[CARRIED_FROM_TAG])])
        client.set_terminated(new_id, "KILLED")  # stopped, as the pack's run was
    except BaseException:
        client.delete_run(new_id)
        shutil.rmtree(checkpoints.directory / f"{PREFIX}{round_num}", ignore_errors=True)
        (checkpoints.directory / RUN_FILE).unlink(missing_ok=True)
        raise
    return new_id


def _read_metrics(path: Path) -> list[Metric]:
    with path.open(newline="", encoding="utf-8") as f:
        return [
            Metric(line["metric"], float(line["value"]), int(line["timestamp"]), int(line["step"]))
            for line in csv.DictReader(f)
        ]
