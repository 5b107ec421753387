"""What every Hydra entry point shares: the config folder, resolvers, and clean error reporting."""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from omegaconf import OmegaConf

from fedlm import paths
from fedlm.errors import FedlmError
from fedlm.io import is_disk_full

CONFIG_DIR = str(paths.PROJECT_ROOT / "conf")


def register_resolvers() -> None:
    """``${fedlm_dir:cache}``, ``${fedlm_dir:shared_data}``, ``${fedlm_dir:results}`` in configs."""
    if not OmegaConf.has_resolver("fedlm_dir"):
        OmegaConf.register_new_resolver("fedlm_dir", lambda name: str(paths.named(name)))


def quiet_libraries() -> None:
    """Keep libraries' INFO chatter out of the log that Hydra sets up at INFO level.

    Child loggers are named on purpose: MLflow re-applies alembic's logging file (which sets the
    ``alembic`` logger to INFO) whenever it creates a store, but leaves existing children alone.
    """
    levels = {
        "absl": logging.WARNING,
        "h5py": logging.WARNING,
        "matplotlib": logging.WARNING,
        "urllib3": logging.WARNING,
        "alembic.runtime.migration": logging.WARNING,
        "mlflow.store.db.utils": logging.WARNING,
        # "compiled metrics have yet to be built" when MLflow reloads a logged model
        "tensorflow": logging.ERROR,
    }
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def report_errors(prog: str) -> Callable:
    """Turn fedlm's own errors, and a full disk, into one clear line on stderr and exit status 2,
    no traceback."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except FedlmError as error:
                print(f"{prog}: error: {error}", file=sys.stderr)
                sys.exit(2)
            except OSError as error:  # a full disk that no fedlm writer named: still one line
                if not is_disk_full(error):
                    raise
                exit_disk_full(prog, error)
            finally:
                if "tensorflow_federated" in sys.modules:  # imported by the command's work
                    # TFF's default context would fail in its ServiceManager's __del__ at
                    # interpreter exit, a traceback after the output; fedlm's exit handler drops
                    # it first (and ends any worker it started).
                    from fedlm.federated import workers

                    workers.patch_worker_start()

        return wrapper

    return decorate


def run_hydra(prog: str, hydra_main: Callable[[], Any]) -> Any:
    """Call a ``@hydra.main`` function so that Hydra's own refusals (a config group option that
    does not exist, an override it cannot parse or merge) are one line and exit status 2, as
    fedlm's are; Hydra itself prints several lines and exits 1. ``HYDRA_FULL_ERROR=1`` adds
    the traceback."""
    from hydra.errors import CompactHydraException

    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors instead of printing them
    try:
        return hydra_main()
    except CompactHydraException as error:
        if full_error == "1":
            traceback.print_exc()
        print(f"{prog}: error: {hydra_error_line(error)}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        if isinstance(error, OSError) and is_disk_full(error):  # Hydra writing .hydra/*.yaml
            exit_disk_full(prog, error)
        if full_error == "1":
            raise
        traceback.print_exc()  # what Hydra does with any other error (a crash: a bug)
        sys.exit(1)
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error


def exit_disk_full(prog: str, error: OSError) -> None:
    """Say in one line that a write found the disk full, naming the file (or the job's output
    folder when the error does not name it), and exit with status 2."""
    from hydra.core.hydra_config import HydraConfig

    from fedlm.cli.callbacks import output_dirs

    where = error.filename
    if where is None and HydraConfig.initialized():
        where = f"the output folder {HydraConfig.get().runtime.output_dir}"
    if where is None and output_dirs:
        where = f"the output folder {output_dirs[0]}"
    print(f"{prog}: error: writing {where or 'a file'}: No space left on device", file=sys.stderr)
    sys.exit(2)


def hydra_error_line(error: Exception) -> str:
    """One line from a Hydra error: its first line, the options it lists, its cause's first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    override = getattr(error, "override", None)
    if override:
        line = f"the override {override!r} cannot be parsed: {line}"
    options = getattr(error, "options", None)
    if options:
        line += f": expected one of {', '.join(options)}"
    cause = error.__cause__
    if cause is not None and str(cause).strip():
        line += f": {str(cause).strip().splitlines()[0]}"
    return line
