"""A run's checkpoints in ``<output_dir>/checkpoints/``: TFF's program-state manager + run.json.

Each checkpoint is one ``tff.program.FileProgramStateManager`` version (``round_<n>/``, a
SavedModel) holding the whole learning-process state (model weights and server optimizer state),
the round number, the sampler's state and RNG (as JSON) and the MLflow run id. TFF 0.87 writes a
version into a temporary folder beside it and renames the folder into place, so a version either
exists whole or not at all; an interrupted write leaves only a ``round_<n>_temp<k>`` folder, which
TFF ignores and :meth:`CheckpointStore.remove_partial` removes (at once when a write fails). Old
versions are removed only after the new one is in place (the last ``keep`` are kept), so a crash
never costs the last good checkpoint.

``run.json`` (written atomically once, when the run starts) names the MLflow run the folder
belongs to, so ``resume=true`` finds the run before any state is loaded. ``run.lock`` is held by
the one process writing the run (:meth:`CheckpointStore.hold`), and records its pid.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedlm.errors import DiskFullError, FedlmError, RunInUseError
from fedlm.io import hold_lock, is_disk_full, release_lock, write_text
from fedlm.tracking.base import Checkpoint

if TYPE_CHECKING:
    import tensorflow_federated as tff

PREFIX = "round_"
RUN_FILE = "run.json"
LOCK_FILE = "run.lock"


class CheckpointStore:
    """The checkpoints of one run: save after a round, find and load the latest."""

    def __init__(self, directory: str | Path, keep: int = 3):
        self.directory = Path(directory)
        self.keep = keep
        self._manager: tff.program.FileProgramStateManager | None = None

    @property
    def manager(self) -> tff.program.FileProgramStateManager:
        import tensorflow_federated as tff  # only here: finding and locking a run needs no TFF

        if self._manager is None:  # TFF creates the folder: not before a run needs it
            self._manager = tff.program.FileProgramStateManager(
                str(self.directory), prefix=PREFIX, keep_total=self.keep, keep_first=False
            )
        return self._manager

    def hold(self, what: str, then: str) -> None:
        """Take this run's lock for this process, or raise :class:`RunInUseError` naming ``what``
        (the run), the process that holds it and ``then`` (what to do once it has ended)."""
        lock = self.directory / LOCK_FILE
        try:
            holder = hold_lock(lock)
        except OSError as error:
            if is_disk_full(error):
                raise DiskFullError(lock, "writing the lock of the run") from error
            raise FedlmError(
                f"{what} cannot be taken by this process: {lock}: {error.strerror} (its "
                "checkpoint folder must be a folder this user can write)"
            ) from error
        if holder is None:
            return
        pid, host = holder
        process = f"process {pid}" if pid else "another process"
        if host and host != socket.gethostname():
            process += f" on {host}"
        stop = f" (kill {pid})" if pid and process == f"process {pid}" else ""
        raise RunInUseError(
            f"{what} is being written by {process} (lock {lock}): a run has one writer. Wait for "
            f"that process to end, or stop it{stop}, then {then}"
        )

    def release(self) -> None:
        release_lock(self.directory / LOCK_FILE)

    def rounds(self) -> list[int]:
        """The rounds with a complete checkpoint, oldest first."""
        if not any(self.directory.glob(f"{PREFIX}*")):
            return []  # (without importing TFF)
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
        path = self.directory / f"{PREFIX}{checkpoint.round_num}"
        try:
            _run(self.manager.save(state, checkpoint.round_num))
        except Exception as error:
            self.remove_partial()  # TFF leaves its temporary folder behind
            if is_disk_full(error):
                kept = ", ".join(f"{PREFIX}{n}" for n in self.rounds()) or "none"
                raise DiskFullError(path, "writing the checkpoint", f"kept: {kept}") from error
            raise
        return path

    def set_aside(self, round_num: int) -> Path:
        """Move the checkpoint of ``round_num`` out of TFF's sight (``unreadable_round_<n>``),
        so that the round can be checkpointed again."""
        path = self.directory / f"{PREFIX}{round_num}"
        target = self.directory / f"unreadable_{path.name}"
        shutil.rmtree(target, ignore_errors=True)
        path.rename(target)
        return target

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
