"""``fedlm-worker`` is honest about where it listens: --host is refused, the exposure is printed."""

import subprocess
import sys
from pathlib import Path

import portpicker
import pytest

from fedlm.cli import worker

FEDLM_WORKER = str(Path(sys.executable).with_name("fedlm-worker"))


class Execed(Exception):
    pass


@pytest.mark.parametrize("argv", [["--host", "localhost"], ["--host=node1"], ["--host"]])
def test_host_is_refused_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        worker.parse_args(["--port", "8000", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == f"fedlm-worker: error: {worker.HOST_REFUSED}\n"
    assert "binds every network interface and cannot bind one address" in err
    assert "--advertise-as" in err and "README" in err


def test_the_cli_refuses_host_before_starting_anything():
    done = subprocess.run(
        [FEDLM_WORKER, "--port", "8000", "--host", "localhost"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"fedlm-worker: error: {worker.HOST_REFUSED}"]


def test_start_prints_the_advertised_name_and_the_exposure(monkeypatch, capsys):
    def no_exec(path, args, env):
        raise Execed(args)

    monkeypatch.setattr(worker.os, "execve", no_exec)
    port = portpicker.pick_unused_port()
    with pytest.raises(Execed):
        worker.serve(worker.parse_args(["--port", str(port), "--advertise-as", "node7.lan"]))
    err = capsys.readouterr().err.splitlines()
    assert f"use runtime.workers=[node7.lan:{port}]" in err[0]
    assert err[1] == worker.exposure(port)
    for words in (
        "listens on all network interfaces",
        "unauthenticated",
        f"anyone who can reach port {port} can run TensorFlow computations as this user",
        "private network, a firewall, or an SSH tunnel",
    ):
        assert words in err[1]


def test_advertise_as_defaults_to_this_hosts_name():
    args = worker.parse_args(["--port", "8000"])
    assert args.advertise_as and args.host is None
