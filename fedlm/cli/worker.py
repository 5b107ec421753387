"""``fedlm-worker``: a TFF worker service for ``runtime=remote``, run in the foreground.

Runs TFF's own C++ worker (``tensorflow_federated/data/worker_binary``) on ``--port``. The
process *becomes* the worker (exec), so Ctrl-C, SIGTERM and a job scheduler's signals reach it
directly and nothing is left behind.

TFF's worker binds ``[::]:PORT``, every network interface, and authenticates nobody: anyone who
can reach the port can run TensorFlow computations as this user. Its only flags are ``--port`` and
``--max_concurrent_computation_calls``, so it cannot bind one address; ``fedlm-worker`` says so at
start and refuses ``--host`` (which once only changed the printed hint). ``--advertise-as`` is the
name printed in the ``runtime.workers`` entry to use, nothing more.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys

from fedlm.errors import FedlmError
from fedlm.federated.workers import thread_env, worker_command

HOST_REFUSED = (
    "--host is not supported: TFF's worker binds every network interface and cannot bind one "
    "address; use --advertise-as NAME for the name printed in runtime.workers, and see README "
    "(Runtime: where the clients run) for safe set-ups"
)


def exposure(port: int) -> str:
    """The line ``fedlm-worker`` prints at start about who can use the worker."""
    return (
        f"fedlm-worker: warning: listens on all network interfaces, unauthenticated: anyone who "
        f"can reach port {port} can run TensorFlow computations as this user; use a private "
        "network, a firewall, or an SSH tunnel (README: Runtime: where the clients run)"
    )


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` on any interface of this host.

    The worker cannot tell: gRPC binds with SO_REUSEPORT, so a second worker on a taken port
    starts and silently shares it with the first.
    """
    for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this host
            continue
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fedlm-worker",
        description="Serve TFF computations for fedlm's remote runtime "
        "(runtime=remote runtime.workers=[HOST:PORT,...]).",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port to serve on")
    parser.add_argument(
        "--advertise-as",
        metavar="NAME",
        default=socket.getfqdn(),
        help="name or address other hosts use to reach this one, only printed in the "
        "runtime.workers=[NAME:PORT] hint (default: %(default)s); the worker listens on every "
        "interface whatever this is",
    )
    parser.add_argument("--host", nargs="?", const="", help=argparse.SUPPRESS)  # refused
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=1,
        help="TensorFlow's intra-op threads in the worker (default: %(default)s; 0: TensorFlow's "
        "own choice)",
    )
    parser.add_argument(
        "--inter-op-threads",
        type=int,
        default=2,
        help="TensorFlow's inter-op threads in the worker (default: %(default)s, the fastest "
        "measured per 2 cores; 0: TensorFlow's own choice)",
    )
    parser.add_argument(
        "--max-concurrent-computation-calls",
        type=int,
        default=-1,
        help="cap on client computations run at once on this worker (-1: no cap)",
    )
    args = parser.parse_args(argv)
    if args.host is not None:
        parser.exit(2, f"fedlm-worker: error: {HOST_REFUSED}\n")
    return args


def main(argv: list[str] | None = None) -> None:
    try:
        serve(parse_args(argv))
    except FedlmError as error:
        print(f"fedlm-worker: error: {error}", file=sys.stderr)
        sys.exit(2)


def serve(args: argparse.Namespace) -> None:
    """Check the port, print the command, and become TFF's worker (does not return)."""
    if not 0 < args.port < 65536:
        raise FedlmError(f"--port={args.port} is not allowed: expected a port in 1..65535")
    if not port_is_free(args.port):
        raise FedlmError(
            f"--port={args.port} is already in use on this host (another fedlm-worker?); "
            "choose a free port"
        )
    for flag in ("intra_op_threads", "inter_op_threads"):
        if getattr(args, flag) < 0:
            raise FedlmError(
                f"--{flag.replace('_', '-')}={getattr(args, flag)} is not allowed: expected an "
                "integer >= 1, or 0 for TensorFlow's own choice"
            )
    command = worker_command(args.port, args.max_concurrent_computation_calls)
    threads = thread_env(args.intra_op_threads or None, args.inter_op_threads or None)
    env = {**os.environ, **threads}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = " ".join(
        f"{k}={env[k]}" for k in ("TF_CPP_MIN_LOG_LEVEL", *sorted(threads)) if k in env
    )
    print(
        f"fedlm-worker: serving TFF computations on port {args.port}; "
        f"use runtime.workers=[{args.advertise_as}:{args.port}]\n"
        f"{exposure(args.port)}\n"
        f"fedlm-worker: {settings} {shlex.join(command)}",
        file=sys.stderr,
        flush=True,
    )
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
