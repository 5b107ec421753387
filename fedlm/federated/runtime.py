"""TFF execution contexts whose worker processes always end.

TFF 0.87's local runtime starts ``tensorflow_federated/data/worker_binary`` at the first computation
and has no public way to stop it: the worker outlives Python on every exit path and keeps its
stdout and stderr open, which hangs anything that reads the output to its end (a CI runner,
``| tee``). fedlm therefore

- patches the one place where TFF starts the worker (:func:`patch_worker_start`): the worker gets
  a parent-death signal, real file descriptors and quiet logs, and fedlm records it;
- scopes every context it installs (:func:`execution_context`): on exit it drops TFF's context and
  ends the workers started inside, whether the block ended normally, by an exception or by Ctrl-C;
- turns SIGTERM and SIGHUP into a normal exit (:func:`install_signal_handlers`), so ``finally``
  blocks run.

``runtime.name: remote`` runs the clients of each round on TFF worker services on other processes
or hosts (``fedlm-worker``), split into one subround per worker by TFF's mergeable-computation
context. TensorFlow Federated is imported lazily, so ``fedlm-worker`` starts without it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib.util
import inspect
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from fedlm.config import RUNTIMES, RuntimeConfig
from fedlm.errors import ConfigError, FedlmError

# The TFF release whose private worker start (executor_stacks/executor_factory.py) the patch was
# written against, and the call it replaces. Re-check both on any TFF upgrade.
TFF_VERSION = "0.87.0"
TFF_WORKER_START = "subprocess.Popen(args, stdout=stdout, stderr=stderr)"
_TFF_MODULE = "tensorflow_federated.python.core.impl.executor_stacks.executor_factory"

# TFF's own limits for its gRPC channels to workers (executor_factory.py).
_GRPC_MAX_MESSAGE_BYTES = 2 * 1000 * 1000 * 1000
_GRPC_OPTIONS = [
    ("grpc.max_message_length", _GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _GRPC_MAX_MESSAGE_BYTES),
]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_workers: list[WorkerProcess] = []
_workers_lock = threading.Lock()
# Threads of TFF contexts that execution_context has closed: TFF must not start workers there.
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


def _parent_death_signal(parent_pid: int):
    def set_signal() -> None:  # runs in the child between fork and exec
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return set_signal


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

    The child gets ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: Linux kills it when the *thread* that
    forked it ends (for TFF's worker, the context's asyncio thread), including when the whole
    Python process is killed. stdout/stderr objects without a file descriptor are replaced by
    the process's own fds 1 and 2, and ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (errors only).
    """

    def __init__(self, args, *, stdout=None, stderr=None, env=None, **kwargs):
        env = dict(os.environ if env is None else env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        super().__init__(
            args,
            stdout=_real_fd(stdout, 1),
            stderr=_real_fd(stderr, 2),
            env=env,
            preexec_fn=_parent_death_signal(os.getpid()),
            **kwargs,
        )
        self.started_by = threading.current_thread()
        with _workers_lock:
            _workers.append(self)


class _PopenForTff:
    """``subprocess.Popen`` as TFF's executor-factory module sees it."""

    def __call__(self, args, **kwargs) -> WorkerProcess:
        # TFF retries a failed call by restarting its worker; after Ctrl-C that would bring back
        # the worker execution_context has just ended, running an abandoned computation.
        if threading.current_thread() in _closed_threads:
            raise FedlmError(
                "TFF tried to restart its worker after fedlm's execution_context ended"
            )
        return WorkerProcess(args, **kwargs)

    def __instancecheck__(self, obj: object) -> bool:
        # TFF's ServiceManager.__del__ sends SIGINT to `self._process.pid` if
        # `isinstance(self._process, subprocess.Popen)`, possibly long after fedlm has ended and
        # reaped that worker, when the pid may belong to another process. For TFF, a worker is a
        # Popen only until it has been reaped.
        return isinstance(obj, subprocess.Popen) and obj.returncode is None

    def __getitem__(self, item: object) -> object:  # TFF's annotation `subprocess.Popen[bytes]`
        return subprocess.Popen[item]


class _SubprocessForTff:
    """Stands in for the ``subprocess`` module inside TFF's executor-factory module."""

    Popen = _PopenForTff()

    def __getattr__(self, name: str) -> object:
        return getattr(subprocess, name)


_SUBPROCESS_FOR_TFF = _SubprocessForTff()


def check_worker_start(version: str, source: str) -> None:
    """Raise :class:`FedlmError` unless ``source`` is TFF 0.87's worker start that fedlm patches."""
    if version != TFF_VERSION or TFF_WORKER_START not in source:
        found = "the call is missing" if TFF_WORKER_START not in source else "the call is there"
        raise FedlmError(
            f"fedlm patches how TFF {TFF_VERSION} starts its worker_binary (`{TFF_WORKER_START}` "
            f"in {_TFF_MODULE}), but TFF {version} is installed and {found}. Re-check that "
            "module's start_process and update fedlm/federated/runtime.py (TFF_VERSION), or "
            f"install tensorflow-federated=={TFF_VERSION}."
        )


def patch_worker_start() -> None:
    """Make TFF start its local worker as a :class:`WorkerProcess`; idempotent.

    Replaces the module-level ``subprocess`` name of TFF's private executor-factory module, the
    only caller of ``Popen`` in TFF's local runtime. Applies to every local C++ context, also
    those created before the patch, as long as their worker has not started yet.
    """
    import tensorflow_federated as tff

    module = sys.modules.get(_TFF_MODULE) or importlib.import_module(_TFF_MODULE)
    if module.subprocess is _SUBPROCESS_FOR_TFF:
        return
    check_worker_start(tff.__version__, inspect.getsource(module.local_cpp_executor_factory))
    if module.subprocess is not subprocess:
        raise FedlmError(f"{_TFF_MODULE}.subprocess was already replaced by {module.subprocess!r}")
    module.subprocess = _SUBPROCESS_FOR_TFF
    atexit.register(_at_exit)


def running_workers() -> list[int]:
    """Pids of the recorded workers that are still running."""
    with _workers_lock:
        return [p.pid for p in _workers if p.poll() is None]


def _end(processes: list[WorkerProcess], timeout: float) -> list[int]:
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
    return _end(processes, timeout)


def _at_exit() -> None:
    from tensorflow_federated.python.core.impl.context_stack import runtime_error_context

    # Drop the context TFF installs at import while Python still works: deleted during
    # interpreter teardown, its ServiceManager.__del__ fails with "Exception ignored in ...".
    if threading.current_thread() is threading.main_thread():
        import tensorflow_federated as tff

        tff.framework.get_context_stack().set_default_context(
            runtime_error_context.RuntimeErrorContext()
        )
        gc.collect()
    end_workers()


def stray_workers() -> list[int]:
    """Pids of running ``worker_binary`` children of this process that fedlm did not record."""
    recorded = set(running_workers())
    stray = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid, rest = text.split(" ", 1)
        comm, fields = rest.rsplit(")", 1)
        state, ppid = fields.split()[:2]
        mine = comm == "(worker_binary" and int(ppid) == os.getpid() and state != "Z"
        if mine and int(pid) not in recorded:
            stray.append(int(pid))
    return stray


def _exit_on_signal(signum: int, frame: object) -> None:
    # A second signal of the same kind ends the process at once (the default action).
    signal.signal(signum, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit(128 + signum)`` so ``finally`` blocks run.

    Only from the main thread, and only for signals that still have their default action (a
    launcher's own handler, e.g. submitit's, is left alone). SIGINT already raises
    ``KeyboardInterrupt``.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _exit_on_signal)


def _check_address(address: str) -> None:
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("runtime.workers", address, "host:port, e.g. 'node1:8000'")


def _remote_contexts(workers: list[str], timeout: float):
    """One async TFF context per worker service, after checking that each one answers."""
    import grpc
    import tensorflow_federated as tff

    for address in workers:
        _check_address(address)
    # Channels are never closed, only dropped: closing one races with gRPC's connectivity-polling
    # thread ("ValueError: Cannot invoke RPC: Channel closed!" from that thread).
    channels = [grpc.insecure_channel(address, _GRPC_OPTIONS) for address in workers]
    ready = [grpc.channel_ready_future(channel) for channel in channels]
    unreachable = []
    deadline = time.monotonic() + timeout
    for address, future in zip(workers, ready, strict=True):
        try:
            future.result(max(0.1, deadline - time.monotonic()))
        except grpc.FutureTimeoutError:
            unreachable.append(address)
    if unreachable:
        for future in ready:
            future.cancel()
        raise FedlmError(
            f"runtime.workers: no TFF worker answered at {', '.join(unreachable)} within "
            f"{timeout:g} s; start one on each host with `fedlm-worker --port PORT` "
            "and check that the port is reachable from here"
        )

    executors = []

    def context_for(channel):
        stub = tff.framework.RemoteExecutorGrpcStub(channel)

        def executor_for(cardinalities):
            cardinalities.setdefault(tff.CLIENTS, 0)  # as TFF's local runtime does
            executor = tff.framework.RemoteExecutor(stub)
            executor.set_cardinalities(cardinalities)
            executors.append(executor)
            return executor

        return tff.framework.AsyncExecutionContext(
            executor_fn=tff.framework.ResourceManagingExecutorFactory(executor_for),
            compiler_fn=tff.backends.native.desugar_and_transform_to_native,
            transform_args=tff.tensorflow.transform_args,
            transform_result=tff.tensorflow.transform_result,
        )

    def dispose() -> None:  # long-lived workers keep each executor's values until told
        for executor in executors:
            executor.close()

    return [context_for(channel) for channel in channels], dispose


def _compile_for_remote(comp):
    """TFF's mergeable form of ``comp``, refusing what the remote runtime would get wrong."""
    import tensorflow_federated as tff

    def per_client(type_spec) -> bool:
        return (
            isinstance(type_spec, tff.FederatedType)
            and type_spec.placement is tff.CLIENTS
            and not type_spec.all_equal
        )

    # TFF 0.87 joins the subrounds' client values in the order the subrounds finish.
    if tff.types.contains(comp.type_signature.result, per_client):
        raise FedlmError(
            f"runtime 'remote' cannot return per-client values in client order (result type "
            f"{comp.type_signature.result}); use runtime 'local' for this computation"
        )
    try:
        return tff.backends.native.compile_to_mergeable_comp_form(comp)
    except ValueError as error:
        raise FedlmError(
            "runtime 'remote' splits a computation into subrounds at its one aggregation step "
            f"(TFF's mergeable form), which this one does not allow ({error}); use runtime 'local'"
        ) from error


@contextlib.contextmanager
def execution_context(cfg: RuntimeConfig, connect_timeout: float = 10.0) -> Iterator[None]:
    """Install TFF's execution context for ``cfg`` in this thread; end what it started on exit.

    ``local``: TFF's synchronous local C++ context (one worker_binary child, started at the
    first computation). ``remote``: TFF's mergeable-computation context over the worker services
    at ``cfg.workers``; each computation (e.g. a learning process's ``next``) runs its clients in
    one subround per worker and merges the partial aggregates. Unreachable workers raise
    :class:`FedlmError` before anything runs, and so do computations the split cannot run
    faithfully (per-client results, one aggregation depending on another).

    On exit (normal, exception, KeyboardInterrupt, SystemExit) the previous context is back and
    every worker started inside has been ended and reaped. Entering again gives a fresh context.
    TFF's context stack is per thread: computations must run in the thread that entered.
    """
    import tensorflow_federated as tff

    patch_worker_start()
    with _workers_lock:
        before = set(_workers)
    dispose = None
    if cfg.name == "local":
        context = tff.backends.native.create_sync_local_cpp_execution_context(
            max_concurrent_computation_calls=cfg.max_concurrent_computation_calls
        )
    elif cfg.name == "remote":
        if not cfg.workers:
            raise ConfigError("runtime.workers", [], "a non-empty list of host:port for 'remote'")
        if cfg.max_concurrent_computation_calls != -1:
            raise ConfigError(
                "runtime.max_concurrent_computation_calls",
                cfg.max_concurrent_computation_calls,
                "-1 with runtime 'remote' (set the cap on each worker: "
                "fedlm-worker --max-concurrent-computation-calls N)",
            )
        async_contexts, dispose = _remote_contexts(list(cfg.workers), connect_timeout)
        context = tff.framework.MergeableCompExecutionContext(
            async_contexts, compiler_fn=_compile_for_remote
        )
        del async_contexts
    else:
        raise ConfigError("runtime.name", cfg.name, RUNTIMES)

    def started_here() -> list[WorkerProcess]:
        with _workers_lock:
            return [p for p in _workers if p not in before]

    finished = False
    try:
        with tff.framework.get_context_stack().install(context):
            yield
        finished = True
    finally:
        # Workers first, so that a computation still in flight (Ctrl-C) fails at once.
        for process in started_here():
            _closed_threads.add(process.started_by)
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        if dispose is not None and finished:  # a subround may still run on a worker
            dispose()
        del context  # TFF's ServiceManager.__del__ stops the worker if nothing else holds it
        gc.collect()
        _end(started_here(), timeout=5.0)
