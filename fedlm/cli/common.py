"""What every Hydra entry point shares: the config folder, resolvers, and clean error reporting."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable

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
                where = error.filename or "a file"
                print(f"{prog}: error: writing {where}: No space left on device", file=sys.stderr)
                sys.exit(2)

        return wrapper

    return decorate
