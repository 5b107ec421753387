"""How fedlm starts a TFF worker: no Python code runs between fork and exec, and the worker still
dies with the thread that started it."""

import os
import subprocess
import threading
import time
from pathlib import Path

import portpicker
import pytest

from fedlm.federated import workers

_in_child: dict[str, Path] = {}  # set only while a test watches forked children


def _mark_child() -> None:  # os.register_at_fork handlers cannot be removed: a no-op otherwise
    if "path" in _in_child:
        _in_child["path"].write_text("Python ran in the child between fork and exec")


os.register_at_fork(after_in_child=_mark_child)


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def worker_args() -> list[str]:
    return [str(workers.worker_binary_path()), f"--port={portpicker.pick_unused_port()}"]


def test_no_python_runs_in_the_child_between_fork_and_exec(tmp_path):
    # A preexec_fn would run Python there (at-fork handlers included), which can abort the child
    # in threading._at_fork_reinit when other threads hold locks, as gRPC's do in fedlm.
    marker = tmp_path / "marker"
    _in_child["path"] = marker
    try:
        process = workers.WorkerProcess(["true"])  # run through the launcher
        assert process.wait(10) == 0
    finally:
        del _in_child["path"]
    assert not marker.exists(), marker.read_text()


def test_the_worker_runs_the_asked_command_and_dies_with_the_thread_that_started_it():
    started = []
    thread = threading.Thread(target=lambda: started.append(workers.WorkerProcess(worker_args())))
    thread.start()
    thread.join()
    process = started[0]
    try:
        # The launcher has become the worker (same pid), which got its parent-death signal:
        # the thread has ended, so Linux kills it.
        assert Path(process.args[0]).name == "worker_binary"
        assert process.wait(10) == -9
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_worker_of_a_live_thread_keeps_running_as_worker_binary():
    process = workers.WorkerProcess(worker_args())
    try:
        deadline = time.monotonic() + 10
        while comm(process.pid) != "worker_binary" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert comm(process.pid) == "worker_binary"
        assert process.pid in workers.running_workers()
    finally:
        ended = workers.end([process])
    assert ended == [process.pid]  # it was running until ended, and is reaped
    assert process.returncode is not None


def launch(command: list[str], ready_write: int) -> tuple[int, str]:
    """Run a launcher command; its exit status and output, once ``ready_write`` was closed."""
    try:
        process = subprocess.Popen(
            command, pass_fds=(ready_write,), stdout=subprocess.PIPE, text=True
        )
    finally:
        os.close(ready_write)
    return process.wait(10), process.stdout.read()


def test_the_launcher_closes_the_ready_pipe_and_execs_only_for_its_parent():
    ready_read, ready_write = os.pipe()
    command = workers.launcher_command(["echo", "ran"], ready_write)
    assert launch(command, ready_write) == (0, "ran\n")
    assert os.read(ready_read, 1) == b""  # closed by the launcher, nothing written
    os.close(ready_read)
    # Its parent died before the signal took effect (here: another pid is named): no exec.
    ready_read, ready_write = os.pipe()
    command = workers.launcher_command(["echo", "ran"], ready_write)
    command[command.index(str(os.getpid()))] = "1"
    assert launch(command, ready_write) == (1, "")
    os.close(ready_read)


def test_a_missing_program_is_named_before_anything_starts():
    with pytest.raises(FileNotFoundError, match="no-such-worker"):
        workers.WorkerProcess(["/nonexistent/no-such-worker"])
