"""The MLflow tracker: one run per job, per-round metrics, artifacts, checkpoints and resume.

A fresh run is created in ``tracking.experiment_name`` with the config as params and provenance
tags; its checkpoints go to ``<output_dir>/checkpoints/`` (recorded in the run's
``fedlm.checkpoint_dir`` tag and, the other way round, in that folder's ``run.json``).

Resuming (``resume=true``: the run of this output dir; ``resume=<run id>``) re-opens the same run
and hands the loop the last checkpoint. The loop then repeats the rounds after that checkpoint,
some of which may already be logged (a crash between logging a round and checkpointing it); the
tracker reads which (metric, step) pairs the run holds and does not log those again, so every
step is logged exactly once. The loop is deterministic for a seed, so the values repeated rounds
would have logged are the ones already there.

A run has one writer: :meth:`MlflowTracker.claim` (called by ``fedlm-train`` before TensorFlow
is imported, and by :meth:`start` otherwise) finds the run and takes the lock in its checkpoint
folder for this process; a second process is refused in one line and writes nothing. A resume
of a run that finished is found there too, and does nothing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml
from mlflow.entities import Metric, Param, Run, RunTag

from fedlm.config import TrainConfig
from fedlm.errors import ConfigError, DiskFullError, FedlmError
from fedlm.tracking import carry, run_info, store, summary, sweeps
from fedlm.tracking.base import Checkpoint, Tracker
from fedlm.tracking.checkpoints import CheckpointStore
from fedlm.tracking.plots import plot_learning_curves
from fedlm.tracking.resume import (
    check_same_config,
    checkpoints_of,
    get_run,
    logged_steps,
    newest_readable,
    run_id_to_resume,
)
from fedlm.tracking.retries import bounded, retry_settings
from fedlm.tracking.runs import RESUMED_FROM_TAG, RESUMES_TAG

BATCH = 100  # MLflow takes at most 100 params or tags per call
MAX_TAG_LENGTH = 5000  # the smallest tag limit of the MLflow versions a team server may run
MODEL_TAG = "fedlm.model_id"


class MlflowTracker(Tracker):
    def __init__(self, cfg: TrainConfig, context: Mapping[str, Any] | None = None):
        self.cfg = cfg
        self.context = dict(context or {})
        self.uri = store.resolve_uri(cfg.tracking.uri)
        self.client: mlflow.MlflowClient | None = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.checkpoints = CheckpointStore(
            Path(cfg.output_dir) / "checkpoints", keep=cfg.tracking.keep_checkpoints
        )
        self.resuming = False
        self.logged: set[tuple[str, int]] = set()  # (metric, step) pairs the run already holds
        self.finished = False
        self.already_finished = False  # resume of a run that had finished: changes nothing
        self._claimed = False  # claim() found the run and took its lock
        self._run: Run | None = None  # the run a resume continues, as claim() found it
        self.retries = retry_settings(cfg.tracking.give_up_after_s)
        self.store_lost = False  # a call gave up on the store: finish() tries once, briefly

    # -- starting and resuming -------------------------------------------------------------

    @bounded("opening the run")
    def claim(self) -> bool:
        if self._claimed:
            return not self.already_finished
        self.client, self.experiment_id = store.prepare_store(
            self.cfg.tracking.uri, self.cfg.tracking.experiment_name
        )
        # MLflow resolves a server's proxied artifact URIs (mlflow-artifacts:/) and logs models
        # through the process-wide tracking URI, whatever the client was given.
        mlflow.set_tracking_uri(self.uri)
        if self.cfg.resume is False:
            output_dir = Path(self.cfg.output_dir).resolve()
            self.checkpoints.hold(f"the output folder {output_dir}", "start this run again")
        else:
            resume = self.cfg.resume
            if carry.is_pack(resume):  # a run carried from another machine: made here first
                run_id = carry.unpack(
                    self.client,
                    self.experiment_id,
                    resume,
                    self.checkpoints,
                    resume,
                    store.mask_uri(self.uri),
                )
            else:
                run_id = run_id_to_resume(resume, self.checkpoints)
            self._run = get_run(self.client, self.uri, resume, run_id)
            self.checkpoints = checkpoints_of(self._run, self.checkpoints, resume)
            if self._run.info.status == "FINISHED":
                # Nothing to do, and nothing written: not an error, so that resuming a sweep
                # skips the jobs that had finished.
                self.already_finished = True
                _warn(f"MLflow run {run_id} finished all its rounds: nothing to resume")
            else:
                shown = "true" if resume is True else resume
                self.checkpoints.hold(f"MLflow run {run_id}", f"resume={shown} again")
        self._claimed = True
        return not self.already_finished

    @bounded("starting the run")
    def start(self, config: Mapping[str, Any]) -> None:
        self.claim()
        if self.cfg.resume is False:
            self._create_run(config)
        else:
            self._reopen_run(config)

    def _create_run(self, config: Mapping[str, Any]) -> None:
        self.checkpoints.remove_partial()
        recorded = self.checkpoints.read_run()
        if recorded is not None or self.checkpoints.rounds():
            owner = f"run {recorded['run_id']}" if recorded else "the run"
            raise ConfigError(
                "resume",
                False,
                f"true to continue {owner} (its checkpoints are in {self.checkpoints.directory}), "
                "or a new output directory for a new run",
            )
        tags = run_info.start_tags(self.cfg, self.context, self.checkpoints.directory)
        parent = self._sweep_parent()
        swept_keys = []
        if parent is not None:
            tags[run_info.PARENT_RUN_TAG] = parent.info.run_id
            swept_keys = parent.data.tags.get(sweeps.KEYS_TAG, "").split()
            overrides = run_info.overrides_of(self.context)
            tags[sweeps.VALUES_TAG] = " ".join(
                f"{k}={overrides[k]}" for k in swept_keys if k in overrides
            )
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_info.run_name(self.context, swept_keys),
            tags={k: _tag(v) for k, v in tags.items() if v != ""},
        )
        self.run_id = run.info.run_id
        self.checkpoints.write_run(self.run_id, store.mask_uri(self.uri))
        self._log_params(self._params(config))
        shown = {**config, "tracking": {**config["tracking"], "uri": self._shown_uri()}}
        self.client.log_text(self.run_id, yaml.safe_dump(shown, sort_keys=False), "config.yaml")

    def _reopen_run(self, config: Mapping[str, Any]) -> None:
        run = self._run
        run_id = run.info.run_id
        current = self._params(config)
        check_same_config(run.data.params, current, self.cfg.resume)
        self.run_id = run_id
        self.resuming = True
        self.logged = logged_steps(self.client, run)
        if self.already_finished:  # the loop gets the last round's checkpoint and runs no round
            return
        self.checkpoints.remove_partial()
        self._log_params({k: v for k, v in current.items() if k not in run.data.params})
        self.client.update_run(run_id, status="RUNNING")
        round_num = self.checkpoints.latest_round()
        self._set_tags(
            {
                RESUMES_TAG: str(int(run.data.tags.get(RESUMES_TAG, "0")) + 1),
                RESUMED_FROM_TAG: "none" if round_num is None else str(round_num),
                "fedlm.last_output_dir": str(Path(self.cfg.output_dir).resolve()),
            }
        )

    def _sweep_parent(self) -> Run | None:
        """The sweep's parent run (made by fedlm.cli.callbacks before the jobs), if any."""
        sweep = run_info.sweep_id(self.context)
        if sweep is None:
            return None
        return sweeps.find_parent(self.client, self.experiment_id, sweep)

    def restore(self, template_state: Any) -> Checkpoint | None:
        """The newest checkpoint that can be read; one that cannot (truncated files, say) is
        reported and, once an older one is read, set aside (``unreadable_round_<n>``)."""
        if not self.resuming:
            return None
        found = newest_readable(self.checkpoints, template_state, self.run_id, _warn)
        if found is None:
            return None  # crashed before its first checkpoint: start again, in the same run
        checkpoint, run_id, round_num = found
        if run_id not in carry.lineage(self._run.data.tags, self.run_id):
            raise FedlmError(
                f"checkpoint {self.checkpoints.directory}/round_{round_num} belongs to MLflow "
                f"run {run_id}, not to run {self.run_id} being resumed"
            )
        return checkpoint

    # -- during the run ----------------------------------------------------------------------

    @bounded("logging metrics")
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), now, int(step))
            for key, value in metrics.items()
            if (key, int(step)) not in self.logged
        ]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)
            self.logged.update((m.key, m.step) for m in batch)

    @bounded("logging text")
    def log_text(self, name: str, text: str, step: int) -> None:
        self.client.log_text(self.run_id, text, f"{name}/round_{step:04d}.txt")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if tags and not self.already_finished:
            self._set_tags(tags)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.save(checkpoint, self.run_id)
        self._set_tags({"fedlm.checkpoint_round": str(checkpoint.round_num)})

    @bounded("logging the model")
    def log_model(self, keras_model: Any, step: int | None = None) -> None:
        """Log the model as an MLflow model (TensorFlow flavour) named ``model``, with the run's
        metrics at ``step`` (default: the last step logged), which the model's page shows."""
        if step is None:
            step = max((s for _, s in self.logged), default=0)
        if not self.cfg.tracking.log_model:
            return
        if MODEL_TAG in self.client.get_run(self.run_id).data.tags:
            return  # logged before a crash that this resumption recovers from
        import tensorflow as tf

        with store.quiet_urls(), mlflow.start_run(run_id=self.run_id):
            info = mlflow.tensorflow.log_model(
                keras_model,
                name="model",
                signature=model_signature(keras_model),
                step=int(step),
                # Given, MLflow skips a ~20 s requirement inference; the model needs only TF.
                pip_requirements=[f"tensorflow=={tf.__version__}"],
            )
        self._set_tags({MODEL_TAG: info.model_id, "fedlm.model_uri": info.model_uri})
        self.client.update_run(self.run_id, status="RUNNING")  # start_run's exit ended it

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is None or self.finished or self.already_finished:
            return
        self.finished = True
        if status == "FINISHED":
            try:
                with store.mlflow_environment(**self.retries):
                    self._log_plots()
            except Exception as error:  # plots are a convenience: never fail a finished run
                _warn(f"could not plot the learning curves of MLflow run {self.run_id}: {error}")
        if not self.store_lost:
            try:
                with store.mlflow_environment(**self.retries):
                    self._log_summary(finished=status == "FINISHED")
            except Exception as error:  # never hide the error that ended the run
                _warn(f"could not log the summary of MLflow run {self.run_id}: {error}")
        # A store that has stopped answering gets one quick try (it may be back), not another
        # full round of retries.
        retries = retry_settings(0) if self.store_lost else self.retries
        try:
            with store.quiet_urls(), store.quiet_repeats(), store.mlflow_environment(**retries):
                self.client.set_terminated(self.run_id, status)
        except Exception as error:
            if status == "FINISHED":
                raise self._unreachable(f"marking the run {status}", error) from error
            # Never hide the error that ended the run behind one from the tracking store; when
            # the store is what ended it, that error says so already.
            if not self.store_lost:
                why = store.first_line(error)
                _warn(f"could not mark MLflow run {self.run_id} {status}: {why}")
        finally:
            self.checkpoints.release()  # another process may now resume the run

    def where(self) -> str | None:
        if self.run_id is None:
            return None
        line = (
            f"MLflow run {self.run_id} in experiment {self.cfg.tracking.experiment_name!r} "
            f"at {store.mask_uri(self.uri)}"
        )
        command = store.ui_command(self.uri)
        if command:
            return f"{line}; see it with: {command}"
        if self.uri.startswith(("http://", "https://")):
            base = store.mask_uri(self.uri).rstrip("/")
            return f"{line}: {base}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return line

    # -- helpers ---------------------------------------------------------------------------

    def history(self) -> dict[str, list[tuple[int, float]]]:
        """Every metric of the run as (step, value) points, from the store."""
        run = self.client.get_run(self.run_id)
        return {
            key: [(m.step, m.value) for m in self.client.get_metric_history(self.run_id, key)]
            for key in run.data.metrics
        }

    def _log_summary(self, finished: bool) -> None:
        """train.log, and, for a finished run, the summary metrics (fedlm.tracking.summary) at
        its last round (once: a run that stopped and is resumed logs them when it finishes)."""
        if finished:
            history = self.history()
            metrics = summary.summary_metrics(history)
            step = max((step for points in history.values() for step, _ in points), default=0)
            now = int(time.time() * 1000)
            batch = [Metric(key, value, now, step) for key, value in metrics.items()]
            if batch:
                self.client.log_batch(self.run_id, metrics=batch)
        log = Path(self.cfg.output_dir) / "train.log"  # fedlm.cli.joblog writes it
        if log.is_file():
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            self.client.log_artifact(self.run_id, str(log))

    def _log_plots(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            if plot_learning_curves(self.history(), folder):
                self.client.log_artifacts(self.run_id, folder, "plots")

    def _shown_uri(self) -> str | None:
        uri = self.cfg.tracking.uri
        return None if uri in (None, "", "none") else store.mask_uri(str(uri))

    def _params(self, config: Mapping[str, Any]) -> dict[str, str]:
        params = run_info.params(config)
        if "tracking.uri" in params:  # never a password in a param
            params["tracking.uri"] = run_info.param_value(self._shown_uri())
        return params

    @bounded("logging params")
    def _log_params(self, params: Mapping[str, str]) -> None:
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + BATCH])

    def _store_full(self, what: str, error: BaseException) -> DiskFullError:
        self.store_lost = True  # finish() tries once, quietly
        where = getattr(error, "filename", None) or store.sqlite_path(self.uri) or self.uri
        return DiskFullError(
            where,
            f"MLflow run {self.run_id}: {what} failed: the tracking store at",
            f"the run's checkpoints in {self.checkpoints.directory} are kept: once there is "
            f"space, continue with resume=true hydra.run.dir={Path(self.cfg.output_dir).resolve()}",
        )

    def _unreachable(self, what: str, error: BaseException) -> store.TrackingError:
        self.store_lost = True
        return store.TrackingError(
            f"MLflow run {self.run_id}: {what} failed at {store.mask_uri(self.uri)} "
            f"({type(error).__name__}: {store.first_line(error)}), retried for about "
            f"{self.cfg.tracking.give_up_after_s:g} s (tracking.give_up_after_s). The run's "
            f"checkpoints in {self.checkpoints.directory} are kept: once the store answers, "
            f"continue with resume=true hydra.run.dir={Path(self.cfg.output_dir).resolve()}"
        )

    @bounded("setting tags")
    def _set_tags(self, tags: Mapping[str, str]) -> None:
        items = [RunTag(k, _tag(v)) for k, v in tags.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + BATCH])


def model_signature(keras_model: Any) -> mlflow.models.ModelSignature:
    """Input ids [batch, time] -> logits [batch, time, vocab], any batch size and length (-1)."""
    from mlflow.types import Schema, TensorSpec

    def spec(tensor, name=None):
        shape = tuple(-1 if d is None else int(d) for d in tensor.shape)
        return TensorSpec(np.dtype(tensor.dtype.as_numpy_dtype), shape, name)

    inputs = Schema([spec(t, t.name.split(":")[0]) for t in keras_model.inputs])
    outputs = Schema([spec(t) for t in keras_model.outputs])
    return mlflow.models.ModelSignature(inputs=inputs, outputs=outputs)


def _warn(message: str) -> None:
    print(f"fedlm: warning: {message}", file=sys.stderr)


def _tag(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TAG_LENGTH else text[: MAX_TAG_LENGTH - 3] + "..."
