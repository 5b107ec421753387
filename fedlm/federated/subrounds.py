"""Clients of one computation split over several TFF workers, side by side, and a watch on each.

Side by side. TFF's mergeable-computation context splits a computation's clients into one share
per worker at its one aggregation step and merges the partial aggregates. On its own it runs the
shares one after the other: TFF's ``RemoteExecutor`` makes blocking gRPC calls inside its
coroutines, and all the worker contexts share one event loop, so each call holds the loop until
its worker is done. Here every worker's context runs on an event loop in a thread of its own
(:class:`OwnLoop`), so the blocking calls of different workers overlap (gRPC releases the GIL).
Computations without per-client arguments, and those that cannot be split (more than one
aggregation step, or per-client results), run whole on the first worker
(:func:`subround_context_class`); fedlm says so once for the latter.

Lost workers. TFF retries a call to a worker that has gone away for ever, without a word. A
watchdog (:class:`Watchdog`) follows each worker's gRPC channel, names a worker that stays
unreachable every 10 s, and after ``runtime.give_up_after_s`` ends the computation waiting on it
with a :class:`FedlmError` naming it (at once for a local worker that has exited). Every call to a
worker therefore runs on a loop of fedlm's (:class:`OwnLoop`), one worker's whole computations
included (:func:`whole_context`, also what :mod:`fedlm.federated.resident` runs there), so that
the caller can be released even while that loop is stuck in a gRPC call.

Only :mod:`fedlm.federated.runtime` uses this module. TFF and gRPC are imported lazily.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Sequence

from fedlm.errors import FedlmError


class OwnLoop:
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

    def _start(self, coroutine, wake: Callable[[], None]) -> concurrent.futures.Future:
        with self._lock:
            if self._error is not None:
                coroutine.close()
                raise FedlmError(str(self._error))
            if not self._waiters:
                self.busy_since = time.monotonic()
            self._waiters.add(wake)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

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

        future = self._start(self._context.invoke(comp, arg), wake)
        work = asyncio.wrap_future(future)
        try:
            await asyncio.wait([work, abandon], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            work.cancel()  # and so the task on this loop
            raise
        finally:
            abandon.cancel()
        return self._outcome(future, wake)

    def run_sync(self, coroutine):
        """Run ``coroutine`` (e.g. the context's ``invoke``) here; wait in the calling thread."""
        done = threading.Event()
        future = self._start(coroutine, done.set)
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


def own_loop_context(context, name: str):
    """``OwnLoop`` as a ``tff.framework.AsyncContext`` (TFF type-checks its contexts)."""
    import tensorflow_federated as tff

    class OwnLoopContext(OwnLoop, tff.framework.AsyncContext):
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


def subround_context_class():
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


def worker_contexts(channels):
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


def whole_context(channel, name: str):
    """A synchronous TFF context that runs whole computations on one worker, on its own loop."""
    import tensorflow_federated as tff

    (context,), _ = worker_contexts([channel])
    loop = OwnLoop(context, name)

    class WholeContext(tff.framework.SyncContext):
        # For values kept on the worker between calls (resident.py): executors, and the loop.
        executors = context.executor_factory
        run = staticmethod(loop.run_sync)

        def invoke(self, comp, arg=None):
            return loop.run_sync(context.invoke(comp, arg))

    return WholeContext(), loop


def split_context(channels, say: Callable[[str], None]):
    """TFF's synchronous context over the workers' channels: whole computations run on the first
    worker, and with several workers a computation's clients are split over all of them.

    Returns it, the loops its calls run on (the first worker's for whole computations first, then
    one per worker with several) and what disposes the split's executors (None with one worker).
    """
    whole, whole_loop = whole_context(channels[0], "fedlm-worker-0-whole")
    if len(channels) == 1:
        return whole, [whole_loop], None
    loops = [whole_loop]
    try:
        async_contexts, dispose = worker_contexts(channels)
        for i, context in enumerate(async_contexts):
            loops.append(own_loop_context(context, f"fedlm-worker-{i}"))
    except BaseException:
        for loop in loops:
            loop.close()
        raise
    return subround_context_class()(loops[1:], whole, say), loops, dispose


class Watchdog:
    """Follows each worker's gRPC channel; says which one is unreachable, and gives up on it.

    A worker is unreachable while a computation waits on it and its channel is not READY (gRPC
    reconnects at once, so a live worker is READY again within a moment; an unused channel may
    go IDLE, which is not counted). Every ``say_every`` s of that, one line says so; after
    ``give_up_after`` s (None: never) its loops are given up (:meth:`OwnLoop.give_up`), so the
    computation waiting on it ends with a :class:`FedlmError` naming it, and so does every later
    one. ``exited(address)`` (local workers) gives a reason to give up at once: the worker fedlm
    started has ended and will not come back.
    """

    def __init__(
        self,
        channels,
        addresses: Sequence[str],
        loops: Sequence[OwnLoop],
        give_up_after: float | None,
        say: Callable[[str], None],
        say_every: float = 10.0,
        exited: Callable[[str], str | None] | None = None,
    ):
        import grpc

        self._ready = grpc.ChannelConnectivity.READY
        # The first worker's loop for whole computations, then each worker's (split_context).
        self._loops: dict[str, list[OwnLoop]] = {address: [] for address in addresses}
        self._loops[addresses[0]].append(loops[0])
        for address, loop in zip(addresses, loops[1:], strict=False):
            self._loops[address].append(loop)
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
