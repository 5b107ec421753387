"""fedlm's TFF runtime: workers end on every exit path; the remote runtime matches the local one."""

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import portpicker
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from fedlm.config import RuntimeConfig
from fedlm.errors import ConfigError, FedlmError
from fedlm.federated import runtime

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


@dataclass
class Exit:
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    worker: int | None = None
    output_closed: bool = False  # reading stdout and stderr reached EOF
    seconds_to_eof: float | None = None  # from the signal (or the pid file) to EOF
    worker_gone: bool = False


def _read_to_eof(proc: subprocess.Popen) -> tuple[str, str, float]:
    stdout, stderr = proc.communicate()
    return stdout, stderr, time.monotonic()


@pytest.fixture(scope="module")
def exits(tmp_path_factory) -> dict[str, Exit]:
    """All exit paths at once (each process pays TensorFlow's ~13 s import)."""
    folder = tmp_path_factory.mktemp("exits")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs, pid_files, outputs, left_at = {}, {}, {}, {}
    results = {name: Exit() for name in EXITS}
    with ThreadPoolExecutor(len(EXITS)) as pool:
        try:
            for name, (mode, _, _) in EXITS.items():
                pid_files[name] = folder / f"{name}.pid"
                procs[name] = subprocess.Popen(
                    [sys.executable, str(SCRIPT), mode, str(pid_files[name])],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                # Drained from the start, so that a full pipe never blocks the script.
                outputs[name] = pool.submit(_read_to_eof, procs[name])
            # Generous: five TensorFlow imports on a loaded 2-core machine took over 150 s.
            deadline = time.monotonic() + 600
            for name, (_, signum, _) in EXITS.items():
                while not pid_files[name].exists() and procs[name].poll() is None:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                if pid_files[name].exists():
                    results[name].worker = int(pid_files[name].read_text())
                left_at[name] = time.monotonic()
                if signum is not None and procs[name].poll() is None:
                    time.sleep(1.0)  # into the sleep, or into the endless computation
                    left_at[name] = time.monotonic()
                    procs[name].send_signal(signum)
            for name, result in results.items():
                try:
                    result.stdout, result.stderr, eof_at = outputs[name].result(timeout=120)
                    result.output_closed = True
                    result.seconds_to_eof = max(0.0, eof_at - left_at[name])
                except FutureTimeout:
                    pass
                result.returncode = procs[name].poll()
                result.worker_gone = result.worker is not None and wait_until_gone(result.worker)
        finally:
            for name, proc in procs.items():
                if proc.poll() is None:
                    proc.kill()
                pid = results[name].worker
                if pid is not None and worker_alive(pid):
                    os.kill(pid, signal.SIGKILL)  # a leak this test found; do not keep it
    for name, result in results.items():  # shown with pytest -s
        print(f"{name}: exit status {result.returncode}, EOF after {result.seconds_to_eof} s")
    return results


@pytest.mark.parametrize("name", EXITS)
def test_worker_ends_and_output_closes_on_every_exit_path(exits, name):
    result = exits[name]
    assert result.worker is not None, f"no worker pid written:\n{result.stderr[-3000:]}"
    assert result.output_closed, "reading stdout/stderr to EOF hung: something kept them open"
    assert result.worker_gone, f"worker {result.worker} still running after the {name} exit"
    assert result.returncode == EXITS[name][2], result.stderr[-3000:]
    assert f"worker {result.worker}" in result.stdout
    expected_in_stderr = {
        "exception": ["RuntimeError: raised inside execution_context"],
        "sigint": ["    spin()\n", "KeyboardInterrupt"],  # inside the endless computation
    }
    for text in expected_in_stderr.get(name, []):
        assert text in result.stderr


def test_enter_and_exit_again_gives_a_fresh_context_and_leaves_no_worker():
    workers = []
    for leave_by_exception in (False, True, False):
        before = set(runtime.running_workers())
        expect = pytest.raises(RuntimeError) if leave_by_exception else contextlib.nullcontext()
        with expect, runtime.execution_context(RuntimeConfig()):
            assert total([1, 2, 3]) == 6
            (worker,) = set(runtime.running_workers()) - before
            workers.append(worker)
            if leave_by_exception:
                raise RuntimeError("leave the context")
        assert not worker_alive(worker)
    assert len(set(workers)) == 3


def test_patch_is_in_place_idempotent_and_refuses_other_tff_versions():
    runtime.patch_worker_start()
    runtime.patch_worker_start()
    module = importlib.import_module(runtime._TFF_MODULE)
    assert isinstance(module.subprocess.Popen, runtime._PopenForTff)
    with pytest.raises(FedlmError, match=r"0\.87\.0.*TFF 0\.88\.0 is installed"):
        runtime.check_worker_start("0.88.0", runtime.TFF_WORKER_START)
    with pytest.raises(FedlmError, match="the call is missing"):
        runtime.check_worker_start(runtime.TFF_VERSION, "subprocess.run(args)")


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


def _model_fn():
    keras_model = tf.keras.Sequential(
        [tf.keras.layers.Input(shape=(3,)), tf.keras.layers.Dense(2, kernel_initializer="zeros")]
    )
    return tff.learning.models.from_keras_model(
        keras_model,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec=(tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None], tf.int32)),
    )


def _one_round(process, client_data):
    result = process.next(process.initialize(), client_data)
    return process.get_model_weights(result.state).trainable, result.metrics


def test_remote_runtime_spreads_clients_over_two_workers_and_matches_local(tmp_path):
    rng = np.random.default_rng(0)
    client_data = [
        tf.data.Dataset.from_tensor_slices(
            (rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n).astype(np.int32))
        ).batch(2)
        for n in (3, 4, 5, 6)
    ]
    process = tff.learning.algorithms.build_weighted_fed_avg(
        _model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0),
    )
    with runtime.execution_context(RuntimeConfig()):
        local_weights, local_metrics = _one_round(process, client_data)

    ports = [portpicker.pick_unused_port() for _ in range(2)]
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    # The workers log each executor they make, with its number of clients, and each they drop.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "executor_service=5"}
    workers = []
    try:
        for port, log in zip(ports, logs, strict=True):
            with open(log, "w") as log_file:
                command = [FEDLM_WORKER, "--port", str(port), "--host", "localhost"]
                workers.append(runtime.WorkerProcess(command, stderr=log_file, env=env))
        cfg = RuntimeConfig(name="remote", workers=[f"localhost:{port}" for port in ports])
        with runtime.execution_context(cfg, connect_timeout=30.0):
            remote_weights, remote_metrics = _one_round(process, client_data)
            assert total([1, 2, 3]) == 6
            with pytest.raises(FedlmError, match="cannot return per-client values"):
                plus_one([1, 2, 3])
            with pytest.raises(FedlmError, match="at its one aggregation step"):
                weighted_by_total([1, 2])
    finally:
        for worker in workers:
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
