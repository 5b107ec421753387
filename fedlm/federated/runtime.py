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
per worker at its one aggregation step and merges the partial aggregates. On its own it runs the
shares one after the other: TFF's ``RemoteExecutor`` makes blocking gRPC calls inside its
coroutines, and all the worker contexts share one event loop, so each call holds the loop until
its worker is done. Here every worker's context runs on an event loop in a thread of its own
(:class:`_OwnLoop`), so the blocking calls of different workers overlap (gRPC releases the GIL).
TFF splits the clients in list order (the first ``ceil(n / workers)`` to the first worker, and
so on); :meth:`Runtime.order` arranges a round's clients so that the shares take about equally
long. Computations without per-client arguments, and those that cannot be split (more than one
aggregation step, or per-client results), run whole on the first worker; fedlm says so once for
the latter.

Lost workers. TFF retries a call to a worker that has gone away for ever, without a word. A
watchdog (:class:`_Watchdog`) follows each worker's gRPC channel, names a worker that stays
unreachable every 10 s, and after ``runtime.give_up_after_s`` ends the computation waiting on it
with a :class:`FedlmError` naming it (at once for a local worker that has exited). Every call to a
worker therefore runs on a loop of fedlm's (:class:`_OwnLoop`), one worker's whole computations
included, so that the caller can be released even while that loop is stuck in a gRPC call.

Every worker started inside :func:`execution_context` is ended when it exits, on every exit path
(fedlm/federated/workers.py). TensorFlow Federated is imported lazily, so ``fedlm-worker`` starts
without it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import heapq
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from fedlm.config import RUNTIMES, RuntimeConfig
from fedlm.errors import ConfigError, FedlmError
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

    name: str = "local"
    workers: int = 1  # workers a computation's clients are split over (1: not split)

    def order(self, work: Sequence[float]) -> list[int]:
        """The order to pass a round's clients in, given each one's work (e.g. its batches)."""
        return balanced_order(work, self.workers)


class _OwnLoop:
    """An async TFF context whose invocations run on an event loop in a thread of its own.

    :meth:`give_up` ends the calls waiting on it with an error, also when the loop itself is
    stuck (e.g. in a blocking gRPC call), and every later call fails with it at once.
    """

    def __init__(self, context, name: str):
        self._context = context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._error: FedlmError | None = None
        self._waiters: set[Callable[[], None]] = set()  # wake the callers waiting here
        self.busy_since: float | None = None  # monotonic time since which a call has waited here

    def _start(self, comp, arg, wake: Callable[[], None]) -> concurrent.futures.Future:
        with self._lock:
            if self._error is not None:
                raise FedlmError(str(self._error))
            if not self._waiters:
                self.busy_since = time.monotonic()
            self._waiters.add(wake)
        return asyncio.run_coroutine_threadsafe(self._context.invoke(comp, arg), self._loop)

    def _outcome(self, future: concurrent.futures.Future, wake: Callable[[], None]):
        with self._lock:
            self._waiters.discard(wake)
            if not self._waiters:
                self.busy_since = None
        if future.done() and not future.cancelled() and future.exception() is None:
            return future.result()
        if self._error is not None:  # given up: the error says why, not TFF's retries
            future.cancel()
            raise FedlmError(str(self._error))
        return future.result()

    async def invoke(self, comp, arg):
        caller = asyncio.get_running_loop()
        abandon = caller.create_future()

        def wake() -> None:
            caller.call_soon_threadsafe(lambda: abandon.done() or abandon.set_result(None))

        future = self._start(comp, arg, wake)
        work = asyncio.wrap_future(future)
        try:
            await asyncio.wait([work, abandon], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            work.cancel()  # and so the task on this loop
            raise
        finally:
            abandon.cancel()
        return self._outcome(future, wake)

    def invoke_sync(self, comp, arg):
        """Run ``comp`` here and wait for it in the calling thread."""
        done = threading.Event()
        future = self._start(comp, arg, done.set)
        future.add_done_callback(lambda _: done.set())
        try:
            done.wait()
        except BaseException:  # Ctrl-C
            future.cancel()
            raise
        return self._outcome(future, done.set)

    def give_up(self, error: FedlmError) -> None:
        """End what runs or waits here with ``error``, and every later call."""
        with self._lock:
            if self._error is not None:
                return
            self._error = error
            waiters = list(self._waiters)
        for wake in waiters:
            with contextlib.suppress(RuntimeError):  # the caller's loop has closed
                wake()
        with contextlib.suppress(RuntimeError):  # TFF's retries stop
            self._loop.call_soon_threadsafe(self._cancel_tasks)

    def _cancel_tasks(self) -> None:
        for task in asyncio.all_tasks(self._loop):
            task.cancel()

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what still runs here (e.g. TFF retrying a stopped worker) and end the thread."""

        def cancel_all() -> None:
            self._cancel_tasks()
            self._loop.call_soon(self._loop.stop)

        if self._loop.is_running():
            self._loop.call_soon_threadsafe(cancel_all)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()


def _own_loop_context(context, name: str):
    """``_OwnLoop`` as a ``tff.framework.AsyncContext`` (TFF type-checks its contexts)."""
    import tensorflow_federated as tff

    class OwnLoopContext(_OwnLoop, tff.framework.AsyncContext):
        pass

    return OwnLoopContext(context, name)


def _per_client(type_spec) -> bool:
    import tensorflow_federated as tff

    return (
        isinstance(type_spec, tff.FederatedType)
        and type_spec.placement is tff.CLIENTS
        and not type_spec.all_equal
    )


def _takes_client_values(comp) -> bool:
    """Whether ``comp`` has per-client arguments to split (else there is nothing to share)."""
    import tensorflow_federated as tff

    parameter = getattr(comp.type_signature, "parameter", None)
    return parameter is not None and tff.types.contains(parameter, _per_client)


def _compile_for_subrounds(comp):
    """TFF's mergeable form of ``comp``; :class:`FedlmError` if it cannot be split faithfully."""
    import tensorflow_federated as tff

    # TFF 0.87 joins the subrounds' client values in the order the subrounds finish.
    if tff.types.contains(comp.type_signature.result, _per_client):
        raise FedlmError(f"it returns per-client values ({comp.type_signature.result})")
    try:
        return tff.backends.native.compile_to_mergeable_comp_form(comp)
    except (ValueError, TypeError) as error:
        raise FedlmError(
            f"it has more than the one aggregation step that the split needs ({error})"
        ) from error


def _sync_context_class():
    import tensorflow_federated as tff

    class SubroundContext(tff.framework.SyncContext):
        """TFF's mergeable-computation context over contexts on their own loops; what it cannot
        split runs whole in ``whole``."""

        def __init__(self, async_contexts, whole, say: Callable[[str], None]):
            self._forms: dict[object, object] = {}
            self._mergeable = tff.framework.MergeableCompExecutionContext(
                async_contexts, compiler_fn=self._forms.__getitem__
            )
            self._whole = whole
            self._say = say

        def _form(self, comp):
            """The mergeable form of ``comp``, or None to run it whole on the first worker."""
            if comp not in self._forms:
                self._forms[comp] = None
                if _takes_client_values(comp):
                    try:
                        self._forms[comp] = _compile_for_subrounds(comp)
                    except FedlmError as why:
                        self._say(
                            f"runtime: a computation ({comp.type_signature}) cannot be split "
                            f"over the workers because {why}; it runs whole on the first one"
                        )
            return self._forms[comp]

        def invoke(self, comp, arg=None):
            if self._form(comp) is None:
                return self._whole.invoke(comp, arg)
            return self._mergeable.invoke(comp, arg)

    return SubroundContext


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


def _worker_contexts(channels):
    """One async TFF context per worker channel, and a function that disposes their executors."""
    import tensorflow_federated as tff

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


def _whole_context(channel, name: str):
    """A synchronous TFF context that runs whole computations on one worker, on its own loop."""
    import tensorflow_federated as tff

    (context,), _ = _worker_contexts([channel])
    loop = _OwnLoop(context, name)

    class WholeContext(tff.framework.SyncContext):
        def invoke(self, comp, arg=None):
            return loop.invoke_sync(comp, arg)

    return WholeContext(), loop


class _Watchdog:
    """Follows each worker's gRPC channel; says which one is unreachable, and gives up on it.

    A worker is unreachable while a computation waits on it and its channel is not READY (gRPC
    reconnects at once, so a live worker is READY again within a moment; an unused channel may
    go IDLE, which is not counted). Every ``say_every`` s of that, one line says so; after
    ``give_up_after`` s (None: never) its loops are given up (:meth:`_OwnLoop.give_up`), so the
    computation waiting on it ends with a :class:`FedlmError` naming it, and so does every later
    one. ``exited(address)`` (local workers) gives a reason to give up at once: the worker fedlm
    started has ended and will not come back.
    """

    def __init__(
        self,
        channels,
        addresses: Sequence[str],
        loops: dict[str, list[_OwnLoop]],
        give_up_after: float | None,
        say: Callable[[str], None],
        say_every: float = 10.0,
        exited: Callable[[str], str | None] | None = None,
    ):
        import grpc

        self._ready = grpc.ChannelConnectivity.READY
        self._loops = loops
        self._give_up_after = give_up_after
        self._say = say
        self._say_every = say_every
        self._exited = exited
        self._lock = threading.Lock()
        self._down_since: dict[str, float | None] = dict.fromkeys(addresses)
        self._said: dict[str, int] = dict.fromkeys(addresses, 0)
        self._given_up: set[str] = set()
        self._stop = threading.Event()
        self._subscriptions = []
        for address, channel in zip(addresses, channels, strict=True):
            callback = self._follow(address)
            channel.subscribe(callback, try_to_connect=True)
            self._subscriptions.append((channel, callback))
        self._thread = threading.Thread(target=self._run, name="fedlm-watchdog", daemon=True)
        self._thread.start()

    def _follow(self, address: str) -> Callable[[object], None]:
        def on_change(connectivity) -> None:  # on gRPC's polling thread
            with self._lock:
                if connectivity == self._ready:
                    self._down_since[address] = None
                elif self._down_since[address] is None:
                    self._down_since[address] = time.monotonic()

        return on_change

    def _setting(self) -> str:
        if self._give_up_after is None:
            return "never gives up: runtime.give_up_after_s=null"
        return f"gives up after runtime.give_up_after_s={self._give_up_after:g} s"

    def _run(self) -> None:
        tick = min(1.0, self._say_every / 4)
        while not self._stop.wait(tick):
            for address in self._down_since:
                if address not in self._given_up:
                    self._check(address)

    def _check(self, address: str) -> None:
        reason = self._exited(address) if self._exited is not None else None
        with self._lock:
            since = self._down_since[address]
        if reason is not None:
            self._end(address, f"TFF worker {address} is gone: {reason}")
            return
        # Only while a computation waits on the worker: an unused channel goes IDLE after a
        # while, and a call to it reconnects at once.
        busy = [loop.busy_since for loop in self._loops.get(address, [])]
        busy = [t for t in busy if t is not None]
        if since is None or not busy:
            self._said[address] = 0
            return
        since = max(since, min(busy))
        down = time.monotonic() - since
        if self._give_up_after is not None and down >= self._give_up_after:
            self._end(
                address,
                f"TFF worker {address} unreachable for {down:.0f} s; gave up after "
                f"runtime.give_up_after_s={self._give_up_after:g} s",
            )
        elif down >= (self._said[address] + 1) * self._say_every:
            self._said[address] = int(down // self._say_every)
            self._tell(
                f"runtime: worker {address} unreachable for {down:.0f} s; waiting for it "
                f"({self._setting()})"
            )

    def _end(self, address: str, why: str) -> None:
        self._given_up.add(address)
        error = FedlmError(f"{why}; the run ends here, its checkpoints kept")
        self._tell(f"runtime: {error}")
        for loop in self._loops.get(address, []):
            loop.give_up(error)

    def _tell(self, line: str) -> None:
        with contextlib.suppress(Exception):  # a failing `say` must not stop the watch
            self._say(line)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for channel, callback in self._subscriptions:
            with contextlib.suppress(Exception):
                channel.unsubscribe(callback)


def _local_channels(cfg: RuntimeConfig):
    """Start the local workers ``cfg`` asks for; gRPC channels to them once all of them answer."""
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


def _remote_channels(cfg: RuntimeConfig, timeout: float):
    if not cfg.workers:
        raise ConfigError("runtime.workers", [], "a non-empty list of host:port for 'remote'")
    if cfg.max_concurrent_computation_calls != -1:
        raise ConfigError(
            "runtime.max_concurrent_computation_calls",
            cfg.max_concurrent_computation_calls,
            "-1 with runtime 'remote' (set the cap on each worker: "
            "fedlm-worker --max-concurrent-computation-calls N)",
        )
    for address in cfg.workers:
        _check_address(address)
    channels = _connect(
        list(cfg.workers),
        timeout,
        "start one on each host with `fedlm-worker --port PORT` "
        "and check that the port is reachable from here",
    )
    return list(cfg.workers), channels, None


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
    loops: list[_OwnLoop] = []
    finished = False
    try:
        if cfg.name == "local":
            addresses, channels, exited = _local_channels(cfg)
        else:
            addresses, channels, exited = _remote_channels(cfg, connect_timeout)
        whole, whole_loop = _whole_context(channels[0], "fedlm-worker-0-whole")
        loops.append(whole_loop)
        if len(channels) == 1:
            context = whole
        else:
            async_contexts, dispose = _worker_contexts(channels)
            loops += [
                _own_loop_context(c, f"fedlm-worker-{i}") for i, c in enumerate(async_contexts)
            ]
            context = _sync_context_class()(loops[1:], whole, say)
        by_address: dict[str, list[_OwnLoop]] = {address: [] for address in addresses}
        by_address[addresses[0]].append(whole_loop)
        for address, loop in zip(addresses, loops[1:], strict=False):
            by_address[address].append(loop)
        watchdog = _Watchdog(channels, addresses, by_address, give_up_after, say, say_every, exited)
        with tff.framework.get_context_stack().install(context):
            yield Runtime(cfg.name, len(channels))
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
        context = whole = whole_loop = loops = by_address = watchdog = None
        gc.collect()
        worker_processes.end(worker_processes.started_since(before), timeout=5.0)
