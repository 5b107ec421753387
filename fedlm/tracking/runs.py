"""Runs read back from MLflow for reports, and the summary run a report is logged to.

A study's report (``fedlm.report``) works on plain :class:`RunRecord` objects, so that its
grouping and statistics never touch MLflow; this module is where they come from. MLflow is
imported inside the functions, so importing this module (as ``fedlm.report`` does) costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedlm.tracking import run_info

SWEEP_PARENT_TAG = "fedlm.sweep.parent"  # fedlm.tracking.sweeps.PARENT_TAG
REPORT_TAG = "fedlm.report"  # on a report's summary run
OVERRIDE_PREFIX = "override."  # a multirun job's command-line overrides (run_info.context_tags)
# Set on a run each time it is resumed (fedlm.tracking.mlflow_tracker): how often, and from which
# checkpointed round the last time.
RESUMES_TAG = "fedlm.resumes"
RESUMED_FROM_TAG = "fedlm.resumed_from_round"
# Set by fedlm.experiment on a run that stopped at its training.stop_at target: the round it was
# first reached, which is its last round (fewer than training.rounds, and still FINISHED).
STOPPED_AT_TAG = "fedlm.stopped_at_round"
COMMAND_LINE_TAG = "fedlm.hydra.overrides"  # every run's command-line overrides (run_info)
# Set on a run carried from another machine (fedlm.tracking.carry): the ids of the runs it
# continues, oldest first. A report counts the run and those as one (their lineage).
CONTINUES_TAG = "fedlm.continues"
# What a run's result depends on beyond its config: the code (set when the run is created,
# run_info.git_state), and, set at its start by fedlm.experiment.provenance, the model's size and
# the data build it read (a fedlm build's stamp, fedlm.data.build). Runs made before fedlm logged
# one of them lack it.
GIT_DIRTY_TAG = "fedlm.git.dirty"
PARAMETERS_TAG = "fedlm.model.parameters"
VOCAB_SIZE_TAG = "fedlm.model.vocab_size"
PARSER_VERSION_TAG = "fedlm.data.parser_version"
SOURCE_SHA256_TAG = "fedlm.data.source_sha256"
PROVENANCE_TAGS = (
    run_info.GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    PARAMETERS_TAG,
    VOCAB_SIZE_TAG,
    PARSER_VERSION_TAG,
    SOURCE_SHA256_TAG,
)
# The metrics a report reads the history of (the others are not fetched), besides those asked for;
# round/seconds and eval/seconds: the seconds of each round's training and evaluation (the time
# axis); train/loss and train/accuracy: each round's training, so that the per-round history a
# report writes (histories.csv) has every round; privacy/*: logged by runs with a DP aggregator
# (fedlm/federated/aggregators.py), with the clip (aggregator/clip_norm: the report's noise on the
# mean); aggregator/client_norm_mean: the clients' update norms (aggregator.measure_norms).
REPORT_METRICS = (
    "eval/accuracy",
    "eval/loss",
    "eval/perplexity",
    "eval/bits_per_char",
    "round/seconds",
    "eval/seconds",
    "train/loss",
    "train/accuracy",
    "privacy/epsilon",
    "privacy/delta",
    "aggregator/clip_norm",
    "aggregator/client_norm_mean",
)


@dataclass
class RunRecord:
    """One training run as a report sees it: config, status, times and per-round metrics."""

    run_id: str
    name: str
    status: str  # MLflow's: RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    params: dict[str, str] = field(default_factory=dict)  # dotted config keys, override spelling
    tags: dict[str, str] = field(default_factory=dict)
    start_time: float | None = None  # seconds since the epoch
    end_time: float | None = None
    # metric -> [(step, value, seconds since the epoch)], in step order; step = round
    history: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)

    @property
    def overrides(self) -> dict[str, str]:
        """A multirun job's command-line overrides, key -> value (empty for a single run)."""
        n = len(OVERRIDE_PREFIX)
        return {k[n:]: v for k, v in self.tags.items() if k.startswith(OVERRIDE_PREFIX)}

    def setting(self, key: str) -> str | None:
        """The value of ``key``: a multirun job's override if it has one, else the logged param,
        else the run's command line (where a config group such as ``reddi2021`` is chosen)."""
        if key in self.overrides:
            return self.overrides[key]
        if key in self.params:
            return self.params[key]
        command_line = run_info.overrides_of({"hydra.overrides": self.tags.get(COMMAND_LINE_TAG)})
        return command_line.get(key)

    @property
    def lineage(self) -> str:
        """The id of the first run of those this run continues (its own id when none)."""
        return lineage(self.tags, self.run_id)[0]

    @property
    def resumes(self) -> int:
        """How many times the run was resumed after an interruption (0: never)."""
        value = self.tags.get(RESUMES_TAG, "0")
        return int(value) if value.isdigit() else 0


def lineage(tags: Mapping[str, str], run_id: str) -> list[str]:
    """The ids of a run and of the runs it continues (:data:`CONTINUES_TAG`), oldest first."""
    return [*tags.get(CONTINUES_TAG, "").split(), run_id]


def read_runs(
    client,
    experiment_id: str,
    filter_string: str = "",
    metrics: Sequence[str] | None = REPORT_METRICS,
) -> list[RunRecord]:
    """Every training run of the experiment (not sweep parents, not reports), oldest first, with
    the history of ``metrics`` (None: of every metric the run logged)."""
    from mlflow.entities import ViewType

    runs = []
    page_token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=page_token,
        )
        runs.extend(page)
        page_token = page.token
        if not page_token:
            break
    records = []
    for run in runs:
        tags = dict(run.data.tags)
        if tags.get(SWEEP_PARENT_TAG) == "true" or tags.get(REPORT_TAG) == "true":
            continue
        history = {}
        for key in run.data.metrics if metrics is None else metrics:
            if key in run.data.metrics:
                points = client.get_metric_history(run.info.run_id, key)
                history[key] = sorted((m.step, m.value, m.timestamp / 1000.0) for m in points)
        records.append(
            RunRecord(
                run_id=run.info.run_id,
                name=run.info.run_name or run.info.run_id,
                status=run.info.status,
                params=dict(run.data.params),
                tags=tags,
                start_time=_seconds(run.info.start_time),
                end_time=_seconds(run.info.end_time),
                history=history,
            )
        )
    return records


def load_runs(
    uri: str | None,
    experiment_name: str,
    filter_string: str = "",
    metrics: Sequence[str] = (),
) -> tuple[list[RunRecord], str]:
    """The experiment's training runs from the store at ``uri`` (None: the default store), with
    the histories of :data:`REPORT_METRICS` and of ``metrics``.

    Returns the runs and the store's URI as shown to people (credentials masked). Raises
    :class:`fedlm.tracking.store.TrackingError` when the store or the experiment is not there.
    """
    from fedlm.tracking import store

    resolved = store.resolve_uri(uri)
    client = store.connect(resolved)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        names = sorted(e.name for e in client.search_experiments())
        raise store.TrackingError(
            f"experiment {experiment_name!r} is not in {store.mask_uri(resolved)}: expected one "
            f"of {names} (the study's tracking.experiment_name), or pass --tracking-uri"
        )
    wanted = list(dict.fromkeys([*REPORT_METRICS, *metrics]))
    runs = read_runs(client, experiment.experiment_id, filter_string, wanted)
    return runs, store.mask_uri(resolved)


def log_report(
    uri: str | None,
    experiment_name: str,
    folder: str | Path,
    run_ids: Sequence[str],
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log ``folder`` as the artifacts (under ``report/``) of a new summary run; return its id.

    The summary run is tagged ``fedlm.report=true`` (so reports never read it back as a training
    run) and records which runs it summarises; it is nested under their sweep's parent run when
    they all belong to one sweep.
    """
    from fedlm.tracking import store

    client, experiment_id = store.prepare_store(uri, experiment_name)
    parents = {client.get_run(run_id).data.tags.get(run_info.PARENT_RUN_TAG) for run_id in run_ids}
    nested = {run_info.PARENT_RUN_TAG: parents.pop()} if len(parents) == 1 else {}
    run = client.create_run(
        experiment_id,
        run_name=f"report {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={
            REPORT_TAG: "true",
            "fedlm.report.runs": " ".join(run_ids)[:5000],
            **run_info.git_state(),
            **run_info.source_tags("fedlm-report"),
            **{k: v for k, v in nested.items() if v},
            **dict(tags or {}),
        },
    )
    try:
        client.log_artifacts(run.info.run_id, str(folder), "report")
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _seconds(milliseconds: int | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000.0
