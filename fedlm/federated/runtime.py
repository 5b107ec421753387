"""TFF execution contexts, installed for a block of code and ended with everything they started.

``runtime.name: local``
    fedlm starts ``runtime.local_workers`` TFF workers (``tensorflow_federated/data/worker_binary``)
    on this host, each with TensorFlow's thread pools sized by ``runtime.intra_op_threads`` and
    ``runtime.inter_op_threads``, and ends them with the block. One worker runs whole computations,
    as TFF's own local runtime does; several run a round's clients side by side (below).
``runtime.name: remote``
    The same side-by-side split over TFF worker services on other processes or hosts
    (``fedlm-worker``), one share of the clients per worker.

Threads. A round's clients already run concurrently inside one worker, on its inter-op threads.
Measured on 2 cores (README, Performance): one intra-op and two inter-op threads per worker
train a round about a third faster than TensorFlow's default sizes; with a single inter-op thread
TFF's worker runs a batch about 2.4 times slower than a plain ``tf.function`` does on one thread,
so single-threaded workers side by side lose. ``local_workers: auto`` is therefore one worker per
two usable cores.

Side by side. TFF's mergeable-computation context splits a computation's clients into one share
per worker, each worker's calls on an event loop of its own, and a watchdog names a worker that
has gone away and gives up on it (:mod:`fedlm.federated.subrounds`). TFF splits the clients in
list order (the first ``ceil(n / workers)`` to the first worker, and so on); :meth:`Runtime.order`
arranges a round's clients so that the shares take about equally long.

The server state. With one local worker it stays on that worker between rounds
(:meth:`Runtime.server_state`, :mod:`fedlm.federated.resident`): TFF would send it there and back
every round. Split rounds and remote workers (which may restart) get it sent each round.

Every worker started inside :func:`execution_context` is ended when it exits, on every exit path
(fedlm/federated/workers.py). TensorFlow Federated is imported lazily, so ``fedlm-worker`` starts
without it.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from fedlm.config import RuntimeConfig, TrainConfig, at_least, one_of
from fedlm.errors import ConfigError, FedlmError
from fedlm.federated import resident, subrounds
from fedlm.federated import workers as worker_processes

# TFF's own limits for its gRPC channels to workers (executor_factory.py).
_GRPC_MAX_MESSAGE_BYTES = 2 * 1000 * 1000 * 1000
_GRPC_OPTIONS = [
    ("grpc.max_message_length", _GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _GRPC_MAX_MESSAGE_BYTES),
    # A worker restarted on the same port is found within 5 s, not gRPC's default of up to 120 s
    # (the watchdog counts a worker as unreachable until its channel is READY again).
    ("grpc.max_reconnect_backoff_ms", 5000),
]
# How long fedlm waits for the local workers it starts to answer (a loaded machine is slow).
LOCAL_START_TIMEOUT = 120.0


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or SLURM)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def local_workers(cfg: RuntimeConfig) -> int:
    """The number of local workers ``runtime.local_workers`` asks for (``auto``: one per two
    usable cores, at least one)."""
    value = cfg.local_workers
    if value == "auto":
        return max(1, usable_cores() // 2)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError("runtime.local_workers", value, "'auto' or an integer >= 1")
    return value


def subround_sizes(num_clients: int, subrounds: int) -> list[int]:
    """How many of ``num_clients`` clients each subround gets, as TFF's mergeable context splits
    them: ``ceil(remaining clients / remaining subrounds)`` each, in list order."""
    sizes = []
    remaining = num_clients
    for left in range(subrounds, 0, -1):
        if remaining <= 0:
            break
        take = math.ceil(remaining / left)
        sizes.append(take)
        remaining -= take
    return sizes


def balanced_order(work: Sequence[float], subrounds: int) -> list[int]:
    """An order of clients (indices into ``work``) whose split into subrounds is balanced.

    TFF gives each subround a fixed number of consecutive clients (:func:`subround_sizes`);
    within those counts, clients are placed largest first on the subround with the least work
    so far (longest-processing-time first). The order within a subround keeps the clients'
    original order, so one subround gives the original order.
    """
    sizes = subround_sizes(len(work), subrounds)
    if len(sizes) <= 1:
        return list(range(len(work)))
    shares: list[list[int]] = [[] for _ in sizes]
    heap = [(0.0, k) for k in range(len(sizes))]  # (work so far, subround)
    for i in sorted(range(len(work)), key=lambda i: (-work[i], i)):
        full = []
        load, k = heapq.heappop(heap)
        while len(shares[k]) == sizes[k]:
            full.append((load, k))
            load, k = heapq.heappop(heap)
        shares[k].append(i)
        heapq.heappush(heap, (load + work[i], k))
        for item in full:
            heapq.heappush(heap, item)
    return [i for share in shares for i in sorted(share)]


@dataclass(frozen=True)
class Runtime:
    """What the round loop may ask of the installed runtime."""

    workers: int = 1  # workers a computation's clients are split over (1: not split)
    # The one worker's context where the server state may stay between rounds: a local worker,
    # which fedlm started and which ends with the run (a remote one may restart and lose it).
    keeps_state: object = field(default=None, compare=False, repr=False)

    def order(self, work: Sequence[float]) -> list[int]:
        """The order to pass a round's clients in, given each one's work (e.g. its batches)."""
        return balanced_order(work, self.workers)

    def server_state(self, process, state) -> resident.StateInDriver | resident.StateOnWorker:
        """``process``'s server state ``state``, to train rounds from (``next``) and read back
        (``value``): kept on the worker where it may stay, else sent there and back each round."""
        if self.keeps_state is None:
            return resident.StateInDriver(process, state)
        return resident.StateOnWorker(process, state, self.keeps_state)


def _check_address(address: str) -> None:
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("runtime.workers", address, "host:port, e.g. 'node1:8000'")


def _connect(addresses: Sequence[str], timeout: float, hint: str, alive=None):
    """gRPC channels to TFF worker services, after checking that each one answers."""
    import grpc

    # Channels are never closed, only dropped: closing one races with gRPC's connectivity-polling
    # thread ("ValueError: Cannot invoke RPC: Channel closed!" from that thread).
    channels = [grpc.insecure_channel(address, _GRPC_OPTIONS) for address in addresses]
    ready = [grpc.channel_ready_future(channel) for channel in channels]
    unreachable = []
    deadline = time.monotonic() + timeout
    for address, future in zip(addresses, ready, strict=True):
        while True:
            try:
                future.result(min(1.0, max(0.1, deadline - time.monotonic())))
                break
            except grpc.FutureTimeoutError:
                if time.monotonic() >= deadline or (alive is not None and not alive(address)):
                    unreachable.append(address)
                    break
    if unreachable:
        for future in ready:
            future.cancel()
        raise FedlmError(
            f"no TFF worker answered at {', '.join(unreachable)} within {timeout:g} s; {hint}"
        )
    return channels


def _local_channels(cfg: RuntimeConfig, connect_timeout: float):
    """Start the local workers ``cfg`` asks for; gRPC channels to them once all of them answer
    (within :data:`LOCAL_START_TIMEOUT`: ``connect_timeout`` is for workers fedlm did not start)."""
    addresses, processes = [], {}
    for _ in range(local_workers(cfg)):
        process, port = worker_processes.start_local_worker(
            cfg.intra_op_threads, cfg.inter_op_threads, cfg.max_concurrent_computation_calls
        )
        addresses.append(f"localhost:{port}")
        processes[addresses[-1]] = process

    def exited(address: str) -> str | None:
        status = processes[address].poll()
        if status is None:
            return None
        return f"the local worker fedlm started (pid {processes[address].pid}) exited ({status})"

    channels = _connect(
        addresses,
        LOCAL_START_TIMEOUT,
        "fedlm started these workers itself: see their error output above",
        alive=lambda address: processes[address].poll() is None,
    )
    return addresses, channels, exited


def _check_workers(cfg: RuntimeConfig) -> None:
    """``runtime.workers``, which a runtime that does not start its workers connects to, and no
    cap on their concurrent calls (a flag of the worker, which fedlm does not start)."""
    if not cfg.workers:
        raise ConfigError("runtime.workers", [], "a non-empty list of host:port for 'remote'")
    if cfg.max_concurrent_computation_calls != -1:
        raise ConfigError(
            "runtime.max_concurrent_computation_calls",
            cfg.max_concurrent_computation_calls,
            "-1 with runtime 'remote' (set the cap on each worker: "
            "fedlm-worker --max-concurrent-computation-calls N)",
        )


def _remote_channels(cfg: RuntimeConfig, connect_timeout: float):
    """gRPC channels to the worker services ``runtime.workers``, once each one answers."""
    _check_workers(cfg)
    for address in cfg.workers:
        _check_address(address)
    channels = _connect(
        list(cfg.workers),
        connect_timeout,
        "start one on each host with `fedlm-worker --port PORT` "
        "and check that the port is reachable from here",
    )
    return list(cfg.workers), channels, None


@dataclass(frozen=True)
class RuntimeKind:
    """A ``runtime.name``: where its workers come from."""

    # (cfg, connect_timeout) -> (addresses, gRPC channels, the reason a worker exited or None)
    channels: Callable
    starts_workers: bool  # fedlm starts runtime.local_workers itself; else runtime.workers


# runtime.name (conf/runtime/)
RUNTIMES = {
    "local": RuntimeKind(_local_channels, starts_workers=True),
    "remote": RuntimeKind(_remote_channels, starts_workers=False),
}


def check_runtime(cfg: TrainConfig) -> None:
    """``runtime.*``, before anything is started."""
    runtime = cfg.runtime
    one_of("runtime.name", runtime.name, RUNTIMES)
    local_workers(runtime)  # 'auto' or an integer >= 1
    at_least("runtime.intra_op_threads", runtime.intra_op_threads, 1, allow_none=True)
    at_least("runtime.inter_op_threads", runtime.inter_op_threads, 1, allow_none=True)
    at_least("runtime.give_up_after_s", runtime.give_up_after_s, 0, allow_none=True)
    if not RUNTIMES[runtime.name].starts_workers:
        _check_workers(runtime)


@contextlib.contextmanager
def execution_context(
    cfg: RuntimeConfig,
    connect_timeout: float = 10.0,
    say: Callable[[str], None] = print,
    say_every: float = 10.0,
) -> Iterator[Runtime]:
    """Install TFF's execution context for ``cfg`` in this thread; end what it started on exit.

    Yields the :class:`Runtime`, whose ``order`` arranges a round's clients for the split.
    Unreachable workers raise :class:`FedlmError` before anything runs. A worker that becomes
    unreachable later is named with ``say`` every ``say_every`` s while it stays so; after
    ``cfg.give_up_after_s`` s (None: never), or at once for a local worker that has exited, the
    computation waiting on it, and any later one, raises :class:`FedlmError` naming it.

    On exit (normal, exception, KeyboardInterrupt, SystemExit) the previous context is back and
    every worker started inside has been ended and reaped. Entering again gives a fresh context.
    TFF's context stack is per thread: computations must run in the thread that entered.
    """
    import tensorflow_federated as tff

    if cfg.name not in RUNTIMES:
        raise ConfigError("runtime.name", cfg.name, RUNTIMES)
    worker_processes.patch_worker_start()
    before = worker_processes.recorded()
    give_up_after = cfg.give_up_after_s
    if give_up_after is not None and not give_up_after >= 0:
        raise ConfigError("runtime.give_up_after_s", give_up_after, "a number >= 0 or null")
    dispose = watchdog = None
    loops: list[subrounds.OwnLoop] = []
    finished = False
    try:
        addresses, channels, exited = RUNTIMES[cfg.name].channels(cfg, connect_timeout)
        context, loops, dispose = subrounds.split_context(channels, say)
        watchdog = subrounds.Watchdog(
            channels, addresses, loops, give_up_after, say, say_every, exited
        )
        keeps_state = context if RUNTIMES[cfg.name].starts_workers and len(channels) == 1 else None
        with tff.framework.get_context_stack().install(context):
            yield Runtime(len(channels), keeps_state)
        finished = True
    finally:
        if watchdog is not None:
            watchdog.stop()
        # Workers first, so that a computation still in flight (Ctrl-C) fails at once.
        worker_processes.stop(worker_processes.started_since(before))
        if dispose is not None and finished:  # a share may still run on a remote worker
            dispose()
        for loop in loops:
            loop.close()
        context = loops = watchdog = None
        gc.collect()
        worker_processes.end(worker_processes.started_since(before), timeout=5.0)
