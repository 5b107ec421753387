"""What a run records about itself: the config as params, and where and from what code it ran."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from fedlm import paths

# Older tracking servers cut param values at 500 characters and refuse longer ones; the whole
# config is logged as config.yaml anyway.
MAX_PARAM_LENGTH = 500
# Keys that differ between a run and its resumption: recorded as tags, not as (immutable) params.
NOT_PARAMS = ("resume", "output_dir")
# Keys that may differ when a run is resumed (where it runs, not what it computes); the run keeps
# the values it was started with.
MAY_CHANGE = (
    "runtime.",
    "data.cache_dir",
    "tracking.uri",
    "tracking.keep_checkpoints",
    "tracking.give_up_after_s",
)
# Keys left out of a run's name: they change where a run runs or is recorded, not its result.
NOT_IN_NAME = ("tracking", "runtime", "hydra", "data.cache_dir")
# MLflow's own tag names, which its UI shows in the run's header.
GIT_COMMIT_TAG = "mlflow.source.git.commit"
RUN_NAME_TAG = "mlflow.runName"
PARENT_RUN_TAG = "mlflow.parentRunId"
SWEEP_TAG = "fedlm.sweep"
CHECKPOINT_DIR_TAG = "fedlm.checkpoint_dir"


def param_value(value: Any) -> str:
    """A config value as a command-line override would spell it (null, true, [a, b])."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | tuple | dict):
        text = json.dumps(value)
    else:
        text = str(value)
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - 3] + "..."
    return text


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The config as dotted keys (``training.rounds``) and override-style string values."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = param_value(value)
    return flat


def params(config: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in flatten(config).items() if k not in NOT_PARAMS}


def git_state(root: Path = paths.PROJECT_ROOT) -> dict[str, str]:
    """The commit and dirty flag of the fedlm checkout; empty when git or the repository is absent.

    Dirty means tracked files differ from the commit (untracked files are not counted).
    """
    try:
        commit = _git(root, "rev-parse", "HEAD")
        changes = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {GIT_COMMIT_TAG: commit, "fedlm.git.dirty": "true" if changes else "false"}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout.strip()


def versions() -> dict[str, str]:
    import fedlm

    # Read from the installed packages: a run's tags need no TensorFlow import (10-20 s).
    return {
        "fedlm.version": fedlm.__version__,
        "fedlm.tff_version": metadata.version("tensorflow-federated"),
        "fedlm.tf_version": metadata.version("tensorflow"),
        "fedlm.host": socket.gethostname(),
    }


def overrides_of(context: Mapping[str, str]) -> dict[str, str]:
    """The job's command-line overrides, key -> value (``+key``/``~key`` keep their sign off)."""
    overrides = context.get("hydra.overrides") or []
    if isinstance(overrides, str):
        try:
            overrides = shlex.split(overrides)  # quoted values may hold spaces
        except ValueError:
            overrides = overrides.split()
    found = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep:
            found[key.lstrip("+~")] = value
    return found


def sweep_id(context: Mapping[str, str]) -> str | None:
    """The sweep a multirun job belongs to (its sweep dir, absolute), or None for a single run."""
    if context.get("hydra.mode") != "MULTIRUN" or not context.get("hydra.sweep_dir"):
        return None
    return str(Path(context["hydra.sweep_dir"]).resolve())


def context_tags(context: Mapping[str, str]) -> dict[str, str]:
    """Tags from Hydra's facts about the job: mode, output dir, overrides, sweep and job number."""
    tags = {
        f"fedlm.{key}": " ".join(value) if isinstance(value, list) else str(value)
        for key, value in context.items()
        if key != "hydra.choices" and value not in (None, "", [])
    }
    sweep = sweep_id(context)
    if sweep is not None:
        tags[SWEEP_TAG] = sweep
        tags["fedlm.sweep.job"] = str(context.get("hydra.job_num", ""))
        for key, value in overrides_of(context).items():
            tags[f"override.{key}"] = value
    return tags


def run_name(context: Mapping[str, str], swept_keys: Sequence[str] = ()) -> str | None:
    """The run's name: the job's values of the swept keys when its sweep names them, else its
    overrides of keys that change the result (not ``tracking.*``, ``runtime.*``, ``hydra.*``,
    ``data.cache_dir``, ``resume``, ``output_dir``); MLflow picks a random name when none is
    left."""
    overrides = overrides_of(context)
    if any(key in overrides for key in swept_keys):
        shown = [f"{key}={overrides[key]}" for key in swept_keys if key in overrides]
    else:
        shown = [f"{key}={value}" for key, value in overrides.items() if _changes_result(key)]
    return " ".join(shown)[:250] or None


def _changes_result(key: str) -> bool:
    """Whether an override of ``key`` can change what a run computes (see NOT_IN_NAME)."""
    if key in NOT_PARAMS:
        return False
    return not any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in NOT_IN_NAME)
