"""Where fedlm looks for shared data and keeps its cache and results, each overridable by env var.

- ``FEDLM_DATA_DIR``: the reference corpora (default: ``../shared/data`` beside the project root).
- ``FEDLM_CACHE_DIR``: built datasets and pre-trained models (default: ``~/.cache/fedlm``).
- ``FEDLM_RESULTS_DIR``: the MLflow store, checkpoints and reports (default: ``<project>/results``).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("FEDLM_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def cache_dir() -> Path:
    return Path(os.environ.get("FEDLM_CACHE_DIR", Path.home() / ".cache" / "fedlm"))


def results_dir() -> Path:
    return Path(os.environ.get("FEDLM_RESULTS_DIR", PROJECT_ROOT / "results"))


def named(name: str) -> Path:
    """The directory called ``name`` (``shared_data``, ``cache`` or ``results``); for configs."""
    dirs = {"shared_data": shared_data_dir, "cache": cache_dir, "results": results_dir}
    if name not in dirs:
        raise KeyError(f"unknown fedlm directory {name!r}: expected one of {sorted(dirs)}")
    return dirs[name]()
