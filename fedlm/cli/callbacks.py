"""Hydra callbacks (wired in ``conf/hydra/callbacks/fedlm.yaml``, on in ``conf/train.yaml``)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

PROG = "fedlm-train"
# Set by SweptKeys before a multirun's jobs start, read by each job (fedlm.cli.joblog): the keys
# the sweep varies, so that a job's console lines carry its values of them. An environment
# variable, because jobs may run in other processes (joblib) or on other hosts (submitit).
SWEPT_KEYS_ENV = "FEDLM_SWEEP_KEYS"

# Sweeps whose parent MLflow run is open: (uri, experiment name, sweep dir). Hydra does not call
# on_multirun_end when the launcher or a job raises; fedlm-train's main() ends these as FAILED.
_open_sweeps: list[tuple[str | None, str, str]] = []


def swept_keys(overrides: list[str], sweeper_params: Any = None) -> list[str]:
    """The keys a multirun sweeps: its command-line sweeps (``lr=0.1,0.2``, ``range(...)``,
    ``choice(...)``), then the config's ``hydra.sweeper.params`` (a study's own sweep) that the
    command line does not fix to one value."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    keys = [o.get_key_element() for o in parsed if o.is_sweep_override()]
    fixed = {o.get_key_element() for o in parsed if not o.is_sweep_override()}
    for key in sweeper_params or {}:
        if key not in keys and key not in fixed:
            keys.append(key)
    return keys


def swept_values(overrides: list[str], sweeper_params: Any = None) -> dict[str, str]:
    """Each swept key (:func:`swept_keys`) with its values as the sweep spells them
    (``sgd,adam``, ``tag(log, interval(0.001, 10.0))``)."""
    given = {}
    for override in overrides:
        key, _, value = override.partition("=")
        given[key] = given[key.lstrip("+~")] = value
    params = {key: str(value) for key, value in dict(sweeper_params or {}).items()}
    return {key: given.get(key, params.get(key, "")) for key in swept_keys(overrides, params)}


def unusable_dir(path: str | os.PathLike) -> str | None:
    """Why a folder cannot be created or written at ``path``, or None when it can."""
    path = Path(path).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    what = "it" if existing == path else f"{existing}, where it would be created,"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{what} cannot be written by this user"
    if os.statvfs(existing).f_bavail == 0:
        return f"{what} is on a full file system: No space left on device"
    return None


class OutputDirCheck(Callback):
    """Refuse an output folder that cannot be written, in one line, before Hydra creates it
    (Hydra would fail later with a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_dir("hydra.run.dir", config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_dir("hydra.sweep.dir", config)


# The output folder of this process's run or sweep, for errors that name no file.
output_dirs: list[str] = []


def _check_dir(key: str, config: DictConfig) -> None:
    folder = str(OmegaConf.select(config, key))
    output_dirs[:] = [folder]
    problem = unusable_dir(folder)
    if problem is not None:
        print(
            f"{PROG}: error: {key}={folder!r} cannot be used ({problem}): expected a folder "
            "this user can create and write to",
            file=sys.stderr,
        )
        sys.exit(2)


class LauncherCheck(Callback):
    """Refuse, in one line with exit status 2 before any job or MLflow run, a multirun whose
    launcher or sweeper cannot start: the SLURM launcher where there is no ``srun`` (submitit
    raises from deep inside Hydra), an Optuna sweeper whose study storage does not open."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
        if launcher.endswith("SlurmLauncher") and shutil.which("srun") is None:
            _refuse(
                "hydra/launcher=slurm cannot start: no srun on PATH (submitit submits SLURM "
                "jobs from a cluster's login node); run it there, or pick another launcher "
                "(hydra/launcher=parallel runs the jobs on this machine)"
            )
        sweeper = OmegaConf.select(config, "hydra.sweeper")
        if "OptunaSweeper" in str(OmegaConf.select(config, "hydra.sweeper._target_") or ""):
            problem = optuna_study_problem(sweeper)
            if problem:
                _refuse(problem)


def optuna_study_problem(sweeper: Any) -> str | None:
    """Why the Optuna sweeper's study cannot be created or loaded, or None when it can (or
    lives in memory); the study is made now, as the sweeper would make it a moment later."""
    if not sweeper.get("storage"):
        return None
    import optuna

    direction = sweeper.get("direction")
    directions = [str(d) for d in direction] if OmegaConf.is_list(direction) else [str(direction)]
    try:
        optuna.create_study(
            study_name=sweeper.get("study_name"),
            storage=sweeper.storage,
            directions=directions,
            load_if_exists=True,
        )
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return (
            f"hydra.sweeper.storage={sweeper.storage!r} (study {sweeper.get('study_name')!r}) "
            f"cannot be used ({type(error).__name__}: {reason[:200]}): expected an Optuna "
            "storage that opens, e.g. sqlite:///results/optuna.db in an existing folder, and a "
            "study of the same direction"
        )
    return None


def _refuse(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


class SweptKeys(Callback):
    """Hand the keys a multirun sweeps to its jobs (their console lines are prefixed with their
    values of them)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        overrides = list(config.hydra.overrides.task)
        keys = swept_keys(overrides, OmegaConf.select(config, "hydra.sweeper.params"))
        os.environ[SWEPT_KEYS_ENV] = " ".join(keys)


class MlflowSweepCallback(Callback):
    """Before a multirun's jobs: the store, the experiment and the sweep's parent run."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = config.get("tracking")
        if tracking is None or not tracking.enabled:
            return
        from fedlm.tracking.sweeps import start_sweep

        overrides = list(config.hydra.overrides.task)
        sweeper_params = OmegaConf.select(config, "hydra.sweeper.params")
        sweep = str(Path(config.hydra.sweep.dir).resolve())
        start_sweep(
            tracking.uri,
            tracking.experiment_name,
            sweep,
            overrides,
            swept_keys(overrides, sweeper_params),
            swept_values(overrides, sweeper_params),
        )
        _open_sweeps.append((tracking.uri, tracking.experiment_name, sweep))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = config.get("tracking")
        if tracking is None or not tracking.enabled:
            return
        from fedlm.tracking.sweeps import end_sweep

        sweep = str(Path(config.hydra.sweep.dir).resolve())
        end_sweep(tracking.uri, tracking.experiment_name, sweep)
        _forget(sweep)


def end_unfinished_sweeps() -> None:
    """Mark FAILED the parent run of every sweep that started and did not end normally."""
    if not _open_sweeps:
        return
    from fedlm.tracking.sweeps import end_sweep

    for uri, experiment_name, sweep in list(_open_sweeps):
        _forget(sweep)
        try:
            end_sweep(uri, experiment_name, sweep, failed=True)
        except Exception as error:  # never hide the error that ended the sweep
            print(
                f"{PROG}: warning: could not mark the parent run of sweep {sweep} FAILED: {error}",
                file=sys.stderr,
            )


def _forget(sweep: str) -> None:
    _open_sweeps[:] = [s for s in _open_sweeps if s[2] != sweep]
