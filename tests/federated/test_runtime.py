"""fedlm's TFF runtime: workers end on every exit path; clients split over workers side by side
give the results of one worker."""

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import portpicker
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from linear_model import linear_model_fn

from fedlm import tff_compat
from fedlm.config import RuntimeConfig
from fedlm.errors import ConfigError, FedlmError
from fedlm.federated import runtime, subrounds, workers

SCRIPT = Path(__file__).with_name("runtime_exit_script.py")
FEDLM_WORKER = str(Path(sys.executable).with_name("fedlm-worker"))


def worker_alive(pid: int) -> bool:
    """Whether ``pid`` is a TFF worker that has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm, fields = stat.split(" ", 1)[1].rsplit(")", 1)
    return comm == "(worker_binary" and fields.split()[0] != "Z"


def wait_until_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while worker_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@tff.federated_computation(tff.FederatedType(np.int32, tff.CLIENTS))
def total(values):
    return tff.federated_sum(values)


@tff.federated_computation(tff.FederatedType(np.int32, tff.CLIENTS))
def plus_one(values):  # a per-client result
    return tff.federated_map(tff.tensorflow.computation(lambda x: x + 1, np.int32), values)


@tff.federated_computation(tff.FederatedType(np.int32, tff.CLIENTS))
def weighted_by_total(values):  # an aggregation that depends on another
    weights = tff.federated_broadcast(tff.federated_sum(values))
    multiply = tff.tensorflow.computation(lambda x, w: x * w, np.int32, np.int32)
    return tff.federated_sum(tff.federated_map(multiply, (values, weights)))


# How the script leaves execution_context: (script mode, signal the test sends, exit status).
# Ctrl-C comes while a computation runs in the worker, the hardest case for an orderly exit.
EXITS = {
    "normal": ("normal", None, 0),
    "exception": ("exception", None, 1),
    "sigint": ("busy", signal.SIGINT, -signal.SIGINT),
    "sigterm": ("wait", signal.SIGTERM, 128 + signal.SIGTERM),
    "sigkill": ("wait", signal.SIGKILL, -signal.SIGKILL),
}
# TFF's own local runtime (one worker it starts) and fedlm's side-by-side one (workers it starts).
LOCAL_WORKERS = (1, 2)
CASES = [(name, n) for n in LOCAL_WORKERS for name in EXITS]
# Each case is a process that pays TensorFlow's import. The default suite leaves fedlm's
# side-by-side runtime (it starts and ends the workers itself) normally, by Ctrl-C inside a
# computation (the hardest orderly exit) and by SIGKILL (no exit handler at all); the slow set
# also by an exception and SIGTERM, and every path from TFF's own runtime.
DEFAULT_CASES = {("normal", 2), ("sigint", 2), ("sigkill", 2)}
CASE_PARAMS = [
    pytest.param(
        name, n, marks=[] if (name, n) in DEFAULT_CASES else [pytest.mark.slow], id=f"{name}-{n}"
    )
    for name, n in CASES
]


@dataclass
class Exit:
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    workers: list[int] = field(default_factory=list)
    output_closed: bool = False  # reading stdout and stderr reached EOF
    seconds_to_eof: float | None = None  # from the signal (or the pid file) to EOF
    workers_gone: bool = False


def _read_to_eof(proc: subprocess.Popen) -> tuple[str, str, float]:
    stdout, stderr = proc.communicate()
    return stdout, stderr, time.monotonic()


def selected_cases(session) -> list[tuple[str, int]]:
    """The exit cases this pytest run selected (``-m slow`` or not), in CASES order."""
    selected = {
        (item.callspec.params["name"], item.callspec.params["local_workers"])
        for item in session.items
        if item.originalname == "test_workers_end_and_output_closes_on_every_exit_path"
    }
    return [case for case in CASES if case in selected]


@pytest.fixture(scope="module")
def exits(request, tmp_path_factory) -> dict[tuple[str, int], Exit]:
    """The selected exit paths at once (each process pays TensorFlow's ~13 s import)."""
    cases = selected_cases(request.session)
    folder = tmp_path_factory.mktemp("exits")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs, pid_files, outputs, left_at = {}, {}, {}, {}
    results = {case: Exit() for case in cases}
    with ThreadPoolExecutor(len(cases)) as pool:
        try:
            for case in cases:
                name, n = case
                pid_files[case] = folder / f"{name}-{n}.pid"
                procs[case] = subprocess.Popen(
                    [sys.executable, str(SCRIPT), EXITS[name][0], str(pid_files[case]), str(n)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                # Drained from the start, so that a full pipe never blocks the script.
                outputs[case] = pool.submit(_read_to_eof, procs[case])
            # Generous: ten TensorFlow imports (-m slow) on a loaded 2-core machine take minutes.
            deadline = time.monotonic() + 600
            for case in cases:
                signum = EXITS[case[0]][1]
                while not pid_files[case].exists() and procs[case].poll() is None:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                if pid_files[case].exists():
                    results[case].workers = [int(p) for p in pid_files[case].read_text().split()]
                left_at[case] = time.monotonic()
                if signum is not None and procs[case].poll() is None:
                    time.sleep(1.0)  # into the sleep, or into the endless computation
                    left_at[case] = time.monotonic()
                    procs[case].send_signal(signum)
            for case, result in results.items():
                try:
                    result.stdout, result.stderr, eof_at = outputs[case].result(timeout=120)
                    result.output_closed = True
                    result.seconds_to_eof = max(0.0, eof_at - left_at[case])
                except FutureTimeout:
                    pass
                result.returncode = procs[case].poll()
                result.workers_gone = bool(result.workers) and all(
                    wait_until_gone(pid) for pid in result.workers
                )
        finally:
            for case, proc in procs.items():
                if proc.poll() is None:
                    proc.kill()
                for pid in results[case].workers:
                    if worker_alive(pid):
                        os.kill(pid, signal.SIGKILL)  # a leak this test found; do not keep it
    for case, result in results.items():  # shown with pytest -s
        print(f"{case}: exit status {result.returncode}, EOF after {result.seconds_to_eof} s")
    return results


@pytest.mark.parametrize("name, local_workers", CASE_PARAMS)
def test_workers_end_and_output_closes_on_every_exit_path(exits, name, local_workers):
    result = exits[(name, local_workers)]
    assert result.workers, f"no worker pids written:\n{result.stderr[-3000:]}"
    assert len(result.workers) == local_workers
    assert result.output_closed, "reading stdout/stderr to EOF hung: something kept them open"
    assert result.workers_gone, f"workers {result.workers} still running after the {name} exit"
    assert result.returncode == EXITS[name][2], result.stderr[-3000:]
    for pid in result.workers:
        assert f"worker {pid}" in result.stdout
    expected_in_stderr = {
        "exception": ["RuntimeError: raised inside execution_context"],
        "sigint": ["    spin()\n", "KeyboardInterrupt"],  # inside the endless computation
    }
    for text in expected_in_stderr.get(name, []):
        assert text in result.stderr


# TFF's own runtime (one worker) in the slow set, as its exit paths are; fedlm's stays.
@pytest.mark.parametrize("local_workers", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_enter_and_exit_again_gives_a_fresh_context_and_leaves_no_worker(local_workers):
    started = []
    for leave_by_exception in (False, True, False):
        before = set(workers.running_workers())
        expect = pytest.raises(RuntimeError) if leave_by_exception else contextlib.nullcontext()
        cfg = RuntimeConfig(local_workers=local_workers)
        with expect, runtime.execution_context(cfg) as rt:
            assert rt.workers == local_workers
            assert total([1, 2, 3]) == 6
            new = set(workers.running_workers()) - before
            assert len(new) == local_workers
            started.append(new)
            if leave_by_exception:
                raise RuntimeError("leave the context")
        assert not any(worker_alive(pid) for pid in new)
    assert len(set().union(*started)) == 3 * local_workers


def test_patch_is_in_place_and_idempotent():
    workers.patch_worker_start()
    workers.patch_worker_start()
    module = importlib.import_module(tff_compat.EXECUTOR_FACTORY)
    assert isinstance(module.subprocess, tff_compat._SubprocessForTff)
    assert not tff_compat.replace_worker_start(workers.WorkerProcess)  # already in place
    assert tff.__version__ == tff_compat.TFF_VERSION  # the release the patch was written for


def test_unreachable_or_malformed_workers_are_named():
    port = portpicker.pick_unused_port()
    cfg = RuntimeConfig(name="remote", workers=[f"localhost:{port}"])
    with (
        pytest.raises(FedlmError, match=f"no TFF worker answered at localhost:{port}"),
        runtime.execution_context(cfg, connect_timeout=1.0),
    ):
        pass
    with (
        pytest.raises(ConfigError, match="runtime.workers='node1' is not allowed"),
        runtime.execution_context(RuntimeConfig(name="remote", workers=["node1"])),
    ):
        pass


def test_fedlm_worker_refuses_a_taken_port():
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [FEDLM_WORKER, "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert f"--port={port} is already in use" in done.stderr


def _one_round(process, client_data):
    result = process.next(process.initialize(), client_data)
    return process.get_model_weights(result.state).trainable, result.metrics


def _clients(sizes=(3, 4, 5, 6)):
    rng = np.random.default_rng(0)
    return [
        tf.data.Dataset.from_tensor_slices(
            (rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n).astype(np.int32))
        ).batch(2)
        for n in sizes
    ]


def _fed_avg():
    return tff.learning.algorithms.build_weighted_fed_avg(
        linear_model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0),
    )


def test_local_workers_side_by_side_give_one_workers_results(capfd, monkeypatch):
    """Two local workers each train two of the four clients; the round equals one worker's."""
    process, client_data = _fed_avg(), _clients()
    with runtime.execution_context(RuntimeConfig(local_workers=1)) as rt:
        assert rt.workers == 1
        one_weights, one_metrics = _one_round(process, client_data)
    # The workers log each executor they make, with its number of clients.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.setenv("TF_CPP_VMODULE", "executor_service=5")
    capfd.readouterr()
    said = []
    with runtime.execution_context(RuntimeConfig(local_workers=2), say=said.append) as rt:
        assert rt.workers == 2
        two_weights, two_metrics = _one_round(process, client_data)
        # What cannot be split runs whole on the first worker, and fedlm says so once.
        assert plus_one([1, 2, 3]) == [2, 3, 4]
        assert plus_one([4]) == [5]
        assert weighted_by_total([1, 2]) == 9
    for one, two in zip(one_weights, two_weights, strict=True):
        np.testing.assert_allclose(two, one, atol=1e-6)
    assert two_metrics["client_work"]["train"] == pytest.approx(one_metrics["client_work"]["train"])
    assert len(said) == 2
    assert "per-client values" in said[0] and "runs whole on the first one" in said[0]
    assert "more than the one aggregation step" in said[1]
    logs = capfd.readouterr().err
    assert logs.count("created new Executor for cardinalities: clients=2") >= 2


def test_the_workers_shares_run_at_the_same_time(monkeypatch):
    """Each share's call is in flight while the other's is: the shares overlap in time.

    Each client spins for a while in its worker; with TFF's mergeable context alone the second
    share's call would start only after the first had returned.
    """
    calls = []
    invoke = subrounds.OwnLoop.invoke

    async def recording_invoke(self, comp, arg):
        started = time.monotonic()
        try:
            return await invoke(self, comp, arg)
        finally:
            calls.append((self._thread.name, started, time.monotonic()))

    monkeypatch.setattr(subrounds.OwnLoop, "invoke", recording_invoke)
    with runtime.execution_context(RuntimeConfig(local_workers=2)):
        assert busy_total([500_000, 500_000]) == 2
    # Each worker's longest call is its share of the spinning clients (on a loaded machine other
    # calls can also take more than a fraction of a second, so no fixed threshold picks them).
    longest = {}
    for name, start, end in calls:
        if name not in longest or end - start > longest[name][1] - longest[name][0]:
            longest[name] = (start, end)
    assert sorted(longest) == ["fedlm-worker-0", "fedlm-worker-1"]
    (start_a, end_a), (start_b, end_b) = longest.values()
    assert max(start_a, start_b) < min(end_a, end_b)


@tff.tensorflow.computation(np.int64)
def _spin(n):
    """Count to ``n`` in a TensorFlow loop (a client's busy work)."""
    return tf.while_loop(lambda i: i < n, lambda i: i + 1, [tf.constant(0, tf.int64)])


@tff.federated_computation(tff.FederatedType(np.int64, tff.CLIENTS))
def busy_total(counts):
    done = tff.federated_map(
        tff.tensorflow.computation(lambda c: tf.cast(_spin(c) >= c, tf.int32), np.int64), counts
    )
    return tff.federated_sum(done)


@pytest.mark.parametrize("clients, subrounds", [(10, 2), (3, 2), (1, 2), (111, 8), (5, 5), (4, 1)])
def test_subround_sizes_are_tffs_split(clients, subrounds):
    from tensorflow_federated.python.core.impl.execution_contexts import (
        mergeable_comp_execution_context as mergeable,
    )

    values = list(range(clients))
    type_spec = tff.FederatedType(np.int32, tff.CLIENTS)
    split = mergeable._split_value_into_subrounds(values, type_spec, subrounds)
    assert runtime.subround_sizes(clients, subrounds) == [len(share) for share in split]


def test_balanced_order_evens_out_the_shares_within_tffs_counts():
    work = [43, 5, 1, 2, 30, 9, 1, 3, 2, 1]
    order = runtime.balanced_order(work, 2)
    assert sorted(order) == list(range(10))
    first, second = order[:5], order[5:]
    loads = sorted([sum(work[i] for i in first), sum(work[i] for i in second)])
    assert loads == [47, 50]  # the best split into two sets of five is 47 / 50
    assert first == sorted(first) and second == sorted(second)  # sampled order kept inside
    assert runtime.balanced_order(work, 1) == list(range(10))
    assert runtime.balanced_order([7], 3) == [0]
    assert runtime.Runtime(1).order(work) == list(range(10))


def test_local_workers_and_threads_are_checked():
    assert runtime.local_workers(RuntimeConfig(local_workers=3)) == 3
    auto = runtime.local_workers(RuntimeConfig(local_workers="auto"))
    assert auto == max(1, runtime.usable_cores() // 2)
    for bad in (0, -1, "many", True):
        with pytest.raises(ConfigError, match="runtime.local_workers"):
            runtime.local_workers(RuntimeConfig(local_workers=bad))
    assert workers.thread_env(1, 2) == {
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "2",
    }
    assert workers.thread_env(None, None) == {}


def test_remote_runtime_spreads_clients_over_two_workers_and_matches_local(tmp_path):
    process, client_data = _fed_avg(), _clients()
    with runtime.execution_context(RuntimeConfig(local_workers=1)):
        local_weights, local_metrics = _one_round(process, client_data)

    ports = [portpicker.pick_unused_port() for _ in range(2)]
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    # The workers log each executor they make, with its number of clients, and each they drop.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "executor_service=5"}
    remote_workers = []
    try:
        for port, log in zip(ports, logs, strict=True):
            with open(log, "w") as log_file:
                command = [FEDLM_WORKER, "--port", str(port), "--advertise-as", "localhost"]
                remote_workers.append(workers.WorkerProcess(command, stderr=log_file, env=env))
        cfg = RuntimeConfig(name="remote", workers=[f"localhost:{port}" for port in ports])
        with runtime.execution_context(cfg, connect_timeout=30.0, say=lambda line: None) as rt:
            assert rt.workers == 2
            remote_weights, remote_metrics = _one_round(process, client_data)
            assert total([1, 2, 3]) == 6
            assert plus_one([1, 2, 3]) == [2, 3, 4]  # whole, on the first worker
    finally:
        for worker in remote_workers:
            worker.terminate()
            worker.wait(10)

    for local, remote in zip(local_weights, remote_weights, strict=True):
        np.testing.assert_allclose(remote, local, atol=1e-6)
    train = remote_metrics["client_work"]["train"]
    assert train["num_examples"] == 18 and train["num_batches"] == 10
    assert train == pytest.approx(local_metrics["client_work"]["train"])
    for log in logs:  # 4 clients in 2 subrounds: each worker ran 2 of them
        text = log.read_text()
        assert "created new Executor for cardinalities: clients=2" in text
        assert "Destroying executor: clients=2" in text


def _start_fedlm_workers(count, log_folder):
    ports = [portpicker.pick_unused_port() for _ in range(count)]
    started = []
    for i, port in enumerate(ports):
        with open(log_folder / f"worker{i}.log", "w") as log_file:
            command = [FEDLM_WORKER, "--port", str(port), "--advertise-as", "localhost"]
            started.append(workers.WorkerProcess(command, stderr=log_file))
    return [f"localhost:{port}" for port in ports], started


# One worker of one lost (~6 s): the slow set; one of two lost, the harder case, stays.
@pytest.mark.parametrize("count, dead", [(2, 1), pytest.param(1, 0, marks=pytest.mark.slow)])
def test_a_lost_remote_worker_is_named_while_waited_for_and_given_up_on(tmp_path, count, dead):
    addresses, remote_workers = _start_fedlm_workers(count, tmp_path)
    said = []
    try:
        cfg = RuntimeConfig(name="remote", workers=addresses, give_up_after_s=4.0)
        with (
            runtime.execution_context(cfg, connect_timeout=30.0, say=said.append, say_every=1.0),
        ):
            assert total([1, 2, 3, 4]) == 10
            remote_workers[dead].kill()
            remote_workers[dead].wait(10)
            started = time.monotonic()
            with pytest.raises(FedlmError, match=f"TFF worker {addresses[dead]} unreachable"):
                total([1, 2, 3, 4])
            seconds = time.monotonic() - started
            # Every later computation fails at once, naming the worker.
            with pytest.raises(FedlmError, match=addresses[dead]):
                total([1, 2])
    finally:
        for worker in remote_workers:
            worker.terminate()
            worker.wait(10)
    assert seconds < 30, seconds
    waiting = [line for line in said if "waiting for it" in line]
    assert waiting, said
    assert waiting[0].startswith(f"runtime: worker {addresses[dead]} unreachable for ")
    assert "gives up after runtime.give_up_after_s=4 s" in waiting[0]
    assert any("gave up after runtime.give_up_after_s=4 s" in line for line in said)
    assert all(addresses[dead] in line for line in said)


def test_a_local_worker_that_exits_ends_the_computation_at_once():
    said = []
    before = set(workers.running_workers())
    cfg = RuntimeConfig(local_workers=2, give_up_after_s=None)
    with runtime.execution_context(cfg, say=said.append, say_every=1.0):
        assert total([1, 2, 3, 4]) == 6 + 4
        pid = sorted(set(workers.running_workers()) - before)[-1]
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(
            FedlmError, match=rf"is gone: the local worker fedlm started \(pid {pid}\)"
        ):
            total([1, 2, 3, 4])
        assert time.monotonic() - started < 15
    assert not any(worker_alive(p) for p in set(workers.running_workers()) - before)


def test_give_up_after_s_is_checked():
    with (
        pytest.raises(ConfigError, match="runtime.give_up_after_s"),
        runtime.execution_context(RuntimeConfig(give_up_after_s=-1.0)),
    ):
        pass
