"""TFF's worker processes: started so that they always end, recorded, and ended by fedlm.

TFF 0.87's local runtime starts ``tensorflow_federated/data/worker_binary`` at the first computation
and has no public way to stop it: the worker outlives Python on every exit path and keeps its
stdout and stderr open, which hangs anything that reads the output to its end (a CI runner,
``| tee``). fedlm therefore

- has TFF start its worker through fedlm (:func:`patch_worker_start`, by way of
  :mod:`fedlm.tff_compat`, the one home of TFF's private API), and starts its own local workers
  (:func:`start_local_worker`), both as a :class:`WorkerProcess`: a parent-death signal, real
  file descriptors, quiet logs, and a record of every process;
- ends the recorded workers on demand and at exit (:func:`end_workers`).

SIGTERM and SIGHUP become a normal exit in the commands (:mod:`fedlm.cli.signals`), so the
``finally`` blocks that end the workers run.

Nothing here imports TensorFlow Federated at module level, so ``fedlm-worker`` starts without it.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import importlib.util
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

from fedlm import tff_compat
from fedlm.errors import FedlmError

_PR_SET_PDEATHSIG = 1
_workers: list[WorkerProcess] = []
_workers_lock = threading.Lock()
# Threads of TFF contexts that fedlm has closed: TFF must not start workers there.
_closed_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def worker_binary_path() -> Path:
    """TFF's C++ worker, found without importing TensorFlow Federated."""
    spec = importlib.util.find_spec("tensorflow_federated")
    if spec is None or not spec.submodule_search_locations:
        raise FedlmError("tensorflow_federated is not installed: no TFF worker_binary to run")
    path = Path(spec.submodule_search_locations[0]) / "data" / "worker_binary"
    if not path.is_file():
        raise FedlmError(f"TFF's worker binary is missing: expected {path}")
    return path


# Run as `python -I -S -c _LAUNCHER PARENT_PID READY_FD PROGRAM ARGS...` in place of PROGRAM: it
# sets the parent-death signal, checks that the parent has not died before that took effect,
# closes READY_FD (the parent waits for that: until then, the thread that started it must not
# end) and execs PROGRAM, which keeps the signal (same pid, no setuid). A `preexec_fn` would do
# this with Python code between fork and exec, which is unsafe in a process with threads (gRPC's,
# TFF's): the child may abort in `threading._at_fork_reinit` and never become a worker. Without
# one, `subprocess` runs no Python in the child.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    f"ctypes.CDLL(None).prctl({_PR_SET_PDEATHSIG}, signal.SIGKILL, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "os.close(int(sys.argv[2]))\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)
_LAUNCH_TIMEOUT_S = 60.0


def launcher_command(args: list[str], ready_fd: int) -> list[str]:
    """``args`` behind the launcher that gives its process this process's parent-death signal.

    The launcher closes ``ready_fd`` (which the child must inherit) once the signal is set.
    """
    if not sys.executable:
        raise FedlmError("no Python executable (sys.executable is empty) to launch a TFF worker")
    program = shutil.which(args[0])
    if program is None:  # raised here, as Popen would, not in the child
        raise FileNotFoundError(errno.ENOENT, "no executable program", args[0])
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER]
    return [*launcher, str(os.getpid()), str(ready_fd), program, *args[1:]]


def _wait_until_closed(fd: int, timeout: float) -> None:
    """Block until every writer of the pipe ``fd`` reads from has closed it (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0] and not os.read(fd, 1):
            return


def _real_fd(stream: object, fd: int) -> object:
    """``stream`` if it has a file descriptor, else inherit ``fd`` (or DEVNULL if it is closed)."""
    if stream is None or isinstance(stream, int):
        return stream
    try:
        stream.fileno()  # pytest's capsys and notebooks give streams without one
        return stream
    except (AttributeError, OSError, ValueError):
        pass
    try:
        os.fstat(fd)
        return None
    except OSError:
        return subprocess.DEVNULL


class WorkerProcess(subprocess.Popen):
    """A ``Popen`` that dies with the thread that started it, and that fedlm records.

    The child gets ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set by a launcher that then execs
    ``args`` (``_LAUNCHER``): Linux kills it when the *thread* that forked it ends (for TFF's
    worker, the context's asyncio thread), including when the whole Python process is killed.
    stdout/stderr objects without a file descriptor are replaced by the process's own fds 1 and
    2, and ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (errors only).
    """

    def __init__(self, args, *, stdout=None, stderr=None, env=None, started_by_tff=False, **kwargs):
        env = dict(os.environ if env is None else env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        args = [args] if isinstance(args, (str, os.PathLike)) else args
        args = [os.fspath(a) for a in args]
        ready_read, ready_write = os.pipe()
        try:
            try:
                super().__init__(
                    launcher_command(args, ready_write),
                    stdout=_real_fd(stdout, 1),
                    stderr=_real_fd(stderr, 2),
                    env=env,
                    pass_fds=(ready_write, *kwargs.pop("pass_fds", ())),
                    **kwargs,
                )
            finally:
                os.close(ready_write)
            _wait_until_closed(ready_read, _LAUNCH_TIMEOUT_S)
        finally:
            os.close(ready_read)
        self.args = args  # the worker's command, as asked for (not the launcher's)
        self.started_by = threading.current_thread()
        self.started_by_tff = started_by_tff
        with _workers_lock:
            _workers.append(self)


def _start_for_tff(args, **kwargs) -> WorkerProcess:
    """How TFF's local runtime starts its worker once patched."""
    # TFF retries a failed call by restarting its worker; after Ctrl-C that would bring back the
    # worker execution_context has just ended, running an abandoned computation.
    if threading.current_thread() in _closed_threads:
        raise FedlmError("TFF tried to restart its worker after fedlm's execution_context ended")
    return WorkerProcess(args, started_by_tff=True, **kwargs)


def patch_worker_start() -> None:
    """Make TFF start its local worker as a :class:`WorkerProcess`; idempotent.

    Applies to every local C++ context, also those created before the patch, as long as their
    worker has not started yet (:func:`fedlm.tff_compat.replace_worker_start`).
    """
    if tff_compat.replace_worker_start(_start_for_tff):
        atexit.register(_at_exit)


def running_workers() -> list[int]:
    """Pids of the recorded workers that are still running."""
    with _workers_lock:
        return [p.pid for p in _workers if p.poll() is None]


def recorded() -> set[WorkerProcess]:
    """The workers recorded so far (to tell, later, which ones a block of code started)."""
    with _workers_lock:
        return set(_workers)


def started_since(before: set[WorkerProcess]) -> list[WorkerProcess]:
    with _workers_lock:
        return [p for p in _workers if p not in before]


def stop(processes: list[WorkerProcess]) -> None:
    """Send SIGTERM to ``processes`` without waiting, and let TFF restart none of them.

    TFF retries a failed call by restarting its worker; after Ctrl-C that would bring back the
    worker that has just been stopped, running an abandoned computation.
    """
    for process in processes:
        if process.started_by_tff:
            _closed_threads.add(process.started_by)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)


def worker_command(port: int, max_concurrent_computation_calls: int = -1) -> list[str]:
    return [
        str(worker_binary_path()),
        f"--port={port}",
        f"--max_concurrent_computation_calls={max_concurrent_computation_calls}",
    ]


def thread_env(intra_op: int | None, inter_op: int | None) -> dict[str, str]:
    """Environment that sizes TensorFlow's thread pools in a worker (None: TensorFlow's choice)."""
    env = {}
    if intra_op is not None:
        env["TF_NUM_INTRAOP_THREADS"] = str(intra_op)
    if inter_op is not None:
        env["TF_NUM_INTEROP_THREADS"] = str(inter_op)
    return env


def start_local_worker(
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    max_concurrent_computation_calls: int = -1,
) -> tuple[WorkerProcess, int]:
    """Start TFF's worker on a free port of this host; return it and the port.

    The thread counts size TensorFlow's thread pools inside the worker. The worker is recorded,
    dies with the thread that started it, and is ended by :func:`end_workers`.
    """
    import portpicker  # TFF's own choice for its local worker's port

    port = portpicker.pick_unused_port()
    env = {**os.environ, **thread_env(intra_op_threads, inter_op_threads)}
    command = worker_command(port, max_concurrent_computation_calls)
    return WorkerProcess(command, env=env), port


def end(processes: list[WorkerProcess], timeout: float = 5.0) -> list[int]:
    """Terminate, then kill, and reap ``processes``; return the pids that were still running."""
    running = [p for p in processes if p.poll() is None]
    for p in running:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in running:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    with _workers_lock:
        _workers[:] = [p for p in _workers if p.returncode is None]
    return [p.pid for p in running]


def end_workers(timeout: float = 5.0) -> list[int]:
    """End every recorded worker still running (SIGTERM, SIGKILL after ``timeout`` s).

    Returns their pids. Also run at exit (``atexit``, registered by :func:`patch_worker_start`).
    """
    with _workers_lock:
        processes = list(_workers)
    return end(processes, timeout)


def _at_exit() -> None:
    if threading.current_thread() is threading.main_thread():
        tff_compat.drop_default_context()
        gc.collect()
    end_workers()
