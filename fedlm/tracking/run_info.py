"""What a run records about itself: the config as params, and where and from what code it ran."""

from __future__ import annotations

import getpass
import json
import shlex
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from fedlm import paths
from fedlm.config import TrainConfig
from fedlm.federated.aggregators import AGGREGATORS
from fedlm.federated.process import OPTIMIZERS

# Older tracking servers cut param values at 500 characters and refuse longer ones; the whole
# config is logged as config.yaml anyway.
MAX_PARAM_LENGTH = 500
OPTIMIZER_FIELDS = {name: o.takes for name, o in OPTIMIZERS.items()}
AGGREGATOR_FIELDS = {name: a.takes for name, a in AGGREGATORS.items()}
# Keys that differ between a run and its resumption: recorded as tags, not as (immutable) params.
NOT_PARAMS = ("resume", "output_dir")
# Keys that may differ when a run is resumed (where it runs, not what it computes); the run keeps
# the values it was started with.
MAY_CHANGE = (
    "runtime.",
    "model.unroll",  # the same numbers, unrolled or not (tests/federated/test_unroll.py)
    "data.cache_dir",
    "tracking.uri",
    "tracking.keep_checkpoints",
    "tracking.give_up_after_s",
)
# Keys left out of a run's name: they change where a run runs or is recorded, not its result.
NOT_IN_NAME = ("tracking", "runtime", "hydra", "data.cache_dir")
# Config groups whose choice a run's name shows even so: a remote run's times are not a local one's.
NAMED_CHOICES = ("runtime",)
# MLflow's own tag names, which its UI shows in the run's header.
GIT_COMMIT_TAG = "mlflow.source.git.commit"
RUN_NAME_TAG = "mlflow.runName"
DESCRIPTION_TAG = "mlflow.note.content"  # the run page's description (markdown)
PARENT_RUN_TAG = "mlflow.parentRunId"
# The runs table's Source column (shown by default) and the run page's Source and User.
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
USER_TAG = "mlflow.user"
SWEEP_TAG = "fedlm.sweep"
CHECKPOINT_DIR_TAG = "fedlm.checkpoint_dir"
PROG = "uv run fedlm-train"
# Words of config keys shortened in run names.
SHORT_WORDS = {"learning_rate": "lr"}
# A run's name is at most NAME_LENGTH characters (the overrides past it are elided, and all of them
# are in its description). The runs table's name column (190 px) shows about 19 characters of a
# top-level run and 16 of a nested one; a sweep's job whose name would be longer drops the key of
# each dotted swept key (its parent's name lists the keys, in the same order).
NAME_LENGTH = 40
CHILD_NAME_LENGTH = 16
# Keys that only some choices of a config group take (the others leave them null or unused):
# key -> (the key that makes the choice, the choices that take it). Logged only for those, so that
# a run's params hold what its choices use.
ONLY_FOR = {
    "data.pad": ("data.pipeline", ("tutorial",)),
    "data.loss_on_padding": ("data.pipeline", ("paper",)),
    # where the data is read or built from: not a key of TFF's in-memory synthetic set
    "data.cache_dir": ("data.name", ("shakespeare",)),
    "data.source": ("data.name", ("shakespeare",)),
    "data.source_url": ("data.name", ("shakespeare",)),
    "sampler.client_ids": ("sampler.name", ("fixed",)),
    # where it runs (resumes and reports never compare these: MAY_CHANGE, report NOT_SETTINGS)
    "runtime.workers": ("runtime.name", ("remote",)),
    "runtime.local_workers": ("runtime.name", ("local",)),
    "runtime.intra_op_threads": ("runtime.name", ("local",)),
    "runtime.inter_op_threads": ("runtime.name", ("local",)),
}


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
    """The config's keys as params, without those that the chosen optimizers, aggregator, sampler
    and pipeline do not take (null then, by validation). Runs logged before this kept them all:
    resuming compares only the keys both have (:func:`fedlm.tracking.resume.check_same_config`)."""
    flat = flatten(config)
    return {k: v for k, v in flat.items() if k not in NOT_PARAMS and _used(k, flat)}


def _used(key: str, flat: Mapping[str, str]) -> bool:
    """Whether the config's choices (``flat``'s ``*.name`` and ``data.pipeline``) take ``key``
    (:data:`ONLY_FOR`, and the optimizers' and aggregators' own keys)."""
    group, _, field = key.partition(".")
    if group in ("client_optimizer", "server_optimizer") and field in _OPTIONAL_OPTIMIZER_FIELDS:
        return field in OPTIMIZER_FIELDS.get(flat.get(f"{group}.name"), ())
    if group == "aggregator" and field in _OPTIONAL_AGGREGATOR_FIELDS:
        return field in AGGREGATOR_FIELDS.get(flat.get("aggregator.name"), ())
    if key in ONLY_FOR:
        choice, takers = ONLY_FOR[key]
        return flat.get(choice) in takers
    return True


_OPTIONAL_OPTIMIZER_FIELDS = {f for fields in OPTIMIZER_FIELDS.values() for f in fields}
_OPTIONAL_AGGREGATOR_FIELDS = {f for fields in AGGREGATOR_FIELDS.values() for f in fields}


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
    found = {}
    for override in override_list(context):
        key, sep, value = override.partition("=")
        if sep:
            found[key.lstrip("+~")] = value
    return found


def override_list(context: Mapping[str, str]) -> list[str]:
    """The job's command-line overrides as given (``+key=value`` included); quoted values may
    hold spaces."""
    overrides = context.get("hydra.overrides") or []
    if isinstance(overrides, str):
        try:
            return shlex.split(overrides)
        except ValueError:
            return overrides.split()
    return list(overrides)


def sweep_id(context: Mapping[str, str]) -> str | None:
    """The sweep a multirun job belongs to (its sweep dir, absolute), or None for a single run."""
    if context.get("hydra.mode") != "MULTIRUN" or not context.get("hydra.sweep_dir"):
        return None
    return str(Path(context["hydra.sweep_dir"]).resolve())


def context_tags(context: Mapping[str, str]) -> dict[str, str]:
    """Tags from Hydra's facts about the job: mode, output dir, overrides, sweep and job number."""
    sweep = sweep_id(context)
    left_out = {"hydra.choices"} if sweep else {"hydra.choices", "hydra.sweep_dir", "hydra.job_num"}
    tags = {
        f"fedlm.{key}": " ".join(value) if isinstance(value, list) else str(value)
        for key, value in context.items()
        if key not in left_out and value not in (None, "", [])
    }
    if sweep is not None:
        tags[SWEEP_TAG] = sweep
        tags["fedlm.sweep.job"] = str(context.get("hydra.job_num", ""))
        for key, value in overrides_of(context).items():
            tags[f"override.{key}"] = value
    return tags


def source_tags(program: str = "fedlm-train") -> dict[str, str]:
    """MLflow's source and user tags (which ``mlflow.start_run`` sets and a client's
    ``create_run`` does not): the program that made the run, and who ran it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = "unknown"
    return {SOURCE_NAME_TAG: program, SOURCE_TYPE_TAG: "LOCAL", USER_TAG: user}


def start_tags(
    cfg: TrainConfig, context: Mapping[str, str], checkpoint_dir: Path
) -> dict[str, str]:
    """The tags a new run starts with: its code and versions, its source and user, how it was
    started (``context``), its data, its output and checkpoint folders, and, when ``fedlm-train``
    started it, the command that runs it again as its description."""
    tags = {
        **git_state(),
        **source_tags(),
        **versions(),
        **context_tags(context),
        "fedlm.data.name": cfg.data.name,
        "fedlm.data.pipeline": cfg.data.pipeline,
        "fedlm.output_dir": str(Path(cfg.output_dir).resolve()),
        CHECKPOINT_DIR_TAG: str(Path(checkpoint_dir).resolve()),
    }
    if "hydra.overrides" in context:  # started by fedlm-train: how to run it again
        tags[DESCRIPTION_TAG] = description(override_list(context))
    return tags


def command(overrides: Sequence[str], multirun: bool = False) -> str:
    """The shell command that runs fedlm-train with ``overrides``."""
    return " ".join([PROG, *(["-m"] if multirun else []), *map(shlex.quote, overrides)])


def resume_command(overrides: Sequence[str], run_id: str) -> str:
    """The command that continues run ``run_id`` where it stopped: its overrides, with
    ``resume=<run id>`` for any ``resume=`` it had."""
    kept = [o for o in overrides if o.partition("=")[0].lstrip("+~") != "resume"]
    return command([*kept, f"resume={run_id}"])


def description(overrides: Sequence[str], multirun: bool = False, note: str = "") -> str:
    """A run's description (markdown, shown on its page): the command that reproduces it and
    every override it was given."""
    listed = "\n".join(f"- `{o}`" for o in overrides) or "none (conf/train.yaml's defaults)"
    text = f"Reproduce with:\n\n    {command(overrides, multirun)}\n\nOverrides:\n{listed}\n"
    return f"{note}\n\n{text}" if note else text


def short_value(value: str) -> str:
    """A value as a run name shows it: a float to 3 significant digits (``0.316``)."""
    text = str(value)
    if any(c in text for c in ".eE"):
        try:
            return f"{float(text):.3g}"
        except ValueError:
            pass
    return text


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each key as a run name shows it: its last part (``learning_rate`` as ``lr``), prefixed
    with the first word of its group where two keys would look the same (``client.lr``)."""

    def last(key: str) -> str:
        word = key.split(".")[-1]
        return SHORT_WORDS.get(word, word)

    counts: dict[str, int] = {}
    for key in keys:
        counts[last(key)] = counts.get(last(key), 0) + 1
    return {
        key: last(key)
        if counts[last(key)] == 1 or "." not in key
        else f"{key.split('.')[0].split('_')[0]}.{last(key)}"
        for key in keys
    }


def short_name(overrides: Mapping[str, str], length: int = NAME_LENGTH) -> str:
    """``adam lr=0.01 seed=0``: config groups' choices first, as their values alone, then any
    other key by its short name, floats to 3 significant digits; at most ``length`` characters
    (the rest elided: ``... …``)."""
    names = short_keys(list(overrides))
    shown = [
        short_value(overrides[key])
        if _is_group(key)
        else f"{names[key]}={short_value(overrides[key])}"
        for key in values_first(overrides)
    ]
    return fit(shown, length)


def values_first(keys: Sequence[str]) -> list[str]:
    """``keys`` with the config groups (whose values a name shows alone) first, each followed by
    its own keys (``server_optimizer``, ``server_optimizer.learning_rate``), then the others; the
    order given otherwise."""
    groups = [key for key in keys if _is_group(key)]

    def rank(key: str) -> tuple[int, bool]:
        group = key.split(".")[0]
        return (groups.index(group) if group in groups else len(groups), key not in groups)

    return sorted(keys, key=rank)


def fit(words: Sequence[str], length: int) -> str:
    """The words joined by spaces, as many as fit in ``length`` characters with `` …`` after
    them when some are left out."""
    text = " ".join(words)
    if len(text) <= length:
        return text
    shown: list[str] = []
    for word in words:
        if len(" ".join([*shown, word, "…"])) > length:
            break
        shown.append(word)
    if not shown:
        return text[: length - 1] + "…"
    return " ".join([*shown, "…"])


def _is_group(key: str) -> bool:
    return "." not in key and (paths.PROJECT_ROOT / "conf" / key).is_dir()


def run_name(context: Mapping[str, str], swept_keys: Sequence[str] = ()) -> str | None:
    """The run's name (:func:`short_name`): the job's values of the swept keys when its sweep
    names them (without the dotted keys' names where the name would not fit the runs table's
    column for a nested run, CHILD_NAME_LENGTH), else its overrides of keys that change the
    result (not ``tracking.*``, ``runtime.*``, ``hydra.*``, ``data.cache_dir``, ``resume``,
    ``output_dir``); MLflow picks a random name when none is left."""
    overrides = overrides_of(context)
    if any(key in overrides for key in swept_keys):
        shown = {key: overrides[key] for key in swept_keys if key in overrides}
        name = short_name(shown)
        if len(name) > CHILD_NAME_LENGTH:
            words = [
                short_value(shown[key]) if "." in key else short_name({key: shown[key]})
                for key in values_first(shown)
            ]
            name = fit(words, NAME_LENGTH)
        return name or None
    shown = {key: value for key, value in overrides.items() if _changes_result(key)}
    return short_name(shown) or None


def sweep_name(swept_keys: Sequence[str], started: float | None = None) -> str:
    """A sweep's parent run: ``sweep server_optimizer seed 2026-12-02 07:10`` (the keys in the
    order its jobs' names show their values)."""
    names = short_keys(list(swept_keys))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
    keys = fit([names[k] for k in values_first(swept_keys)], 250 - len(" sweep ") - len(when))
    return " ".join(["sweep", *([keys] if keys else []), when])


def _changes_result(key: str) -> bool:
    """Whether an override of ``key`` belongs in a run's name (see NOT_IN_NAME, NAMED_CHOICES)."""
    if key in NOT_PARAMS:
        return False
    if key in NAMED_CHOICES:
        return True
    return not any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in NOT_IN_NAME)
