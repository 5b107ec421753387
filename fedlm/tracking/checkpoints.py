"""A run's checkpoints in ``<output_dir>/checkpoints/``: TFF's program-state manager + run.json.

Each checkpoint is one ``tff.program.FileProgramStateManager`` version (``round_<n>/``, a
SavedModel) holding the whole learning-process state (model weights and server optimizer state),
the round number, the sampler's state and RNG (as JSON) and the MLflow run id. TFF 0.87 writes a
version into a temporary folder beside it and renames the folder into place, so a version either
exists whole or not at all; an interrupted write leaves only a ``round_<n>_temp<k>`` folder, which
TFF ignores and :meth:`CheckpointStore.open` removes. Old versions are removed only after the new
one is in place (the last ``keep`` are kept), so a crash never costs the last good checkpoint.

``run.json`` (written atomically once, when the run starts) names the MLflow run the folder
belongs to, so ``resume=true`` finds the run before any state is loaded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_federated as tff

from fedlm.io import write_text
from fedlm.tracking.base import Checkpoint

PREFIX = "round_"
RUN_FILE = "run.json"


class CheckpointStore:
    """The checkpoints of one run: save after a round, find and load the latest."""

    def __init__(self, directory: str | Path, keep: int = 3):
        self.directory = Path(directory)
        self.keep = keep
        self._manager: tff.program.FileProgramStateManager | None = None

    @property
    def manager(self) -> tff.program.FileProgramStateManager:
        if self._manager is None:  # TFF creates the folder: not before a run needs it
            self._manager = tff.program.FileProgramStateManager(
                str(self.directory), prefix=PREFIX, keep_total=self.keep, keep_first=False
            )
        return self._manager

    def rounds(self) -> list[int]:
        """The rounds with a complete checkpoint, oldest first."""
        if not self.directory.is_dir():
            return []
        return _run(self.manager.get_versions()) or []

    def latest_round(self) -> int | None:
        rounds = self.rounds()
        return rounds[-1] if rounds else None

    def remove_partial(self) -> list[Path]:
        """Delete what interrupted writes left (TFF's ``round_<n>_temp<k>`` folders)."""
        if not self.directory.is_dir():
            return []
        partial = [p for p in self.directory.glob(f"{PREFIX}*_temp*") if p.is_dir()]
        for path in partial:
            shutil.rmtree(path, ignore_errors=True)
        return partial

    def save(self, checkpoint: Checkpoint, run_id: str) -> Path:
        state = {
            "round_num": np.int64(checkpoint.round_num),
            "run_id": run_id,
            "server_state": checkpoint.server_state,
            "sampler_state": json.dumps(checkpoint.sampler_state),
            "extra": json.dumps(checkpoint.extra),
        }
        _run(self.manager.save(state, checkpoint.round_num))
        return self.directory / f"{PREFIX}{checkpoint.round_num}"

    def load(self, template_state: Any, round_num: int | None = None) -> tuple[Checkpoint, str]:
        """The checkpoint of ``round_num`` (default: the latest) and the run id it belongs to.

        ``template_state`` is a freshly initialised learning-process state: TFF needs its
        structure to rebuild the saved one.
        """
        if round_num is None:
            round_num = self.latest_round()
        if round_num is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        structure = {
            "round_num": np.int64(0),
            "run_id": "",
            "server_state": template_state,
            "sampler_state": "",
            "extra": "",
        }
        saved = _run(self.manager.load(round_num, structure))
        checkpoint = Checkpoint(
            round_num=int(saved["round_num"]),
            server_state=saved["server_state"],
            sampler_state=json.loads(_text(saved["sampler_state"])),
            extra=json.loads(_text(saved["extra"])),
        )
        return checkpoint, _text(saved["run_id"])

    def write_run(self, run_id: str, tracking_uri: str) -> None:
        """Record which MLflow run this folder's checkpoints belong to (credentials masked)."""
        record = {"run_id": run_id, "tracking_uri": tracking_uri}
        write_text(self.directory / RUN_FILE, json.dumps(record, indent=2) + "\n")

    def read_run(self) -> dict[str, str] | None:
        path = self.directory / RUN_FILE
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))


def _run(coroutine):
    """Run one of TFF's async program-state calls, also where an event loop already runs."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:  # e.g. in a notebook
        return pool.submit(asyncio.run, coroutine).result()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def find_checkpoint(path: str | Path) -> Path | None:
    """The latest ``round_<n>`` folder at ``path``: a run's output dir, its ``checkpoints/``
    folder, or one ``round_<n>`` folder itself; None when ``path`` holds no checkpoint."""
    path = Path(path).expanduser()
    if path.name.startswith(PREFIX) and (path / "saved_model.pb").is_file():
        return path
    for folder in (path / "checkpoints", path):
        rounds = [
            (int(p.name[len(PREFIX) :]), p)
            for p in folder.glob(f"{PREFIX}*")
            if p.name[len(PREFIX) :].isdigit() and (p / "saved_model.pb").is_file()
        ]
        if rounds:
            return max(rounds)[1]
    return None


def checkpoint_model_weights(checkpoint: Path) -> tuple[list[np.ndarray], int]:
    """The server model's weights (trainable, then non-trainable) and the round of a checkpoint,
    read without rebuilding the learning process (the saved structure keeps its field names)."""
    import tensorflow as tf

    saved = tf.saved_model.load(str(checkpoint))()
    weights = saved["server_state"].global_model_weights
    arrays = [w.numpy() for w in [*weights.trainable, *weights.non_trainable]]
    return arrays, int(saved["round_num"].numpy())
