"""Run a federated sum under fedlm's execution_context, then leave it one way (test_runtime.py).

usage: python runtime_exit_script.py MODE PID_FILE [LOCAL_WORKERS]
MODE: normal | exception | wait (sleep until the test signals this process) |
      busy (start a computation that never ends and wait in it for the test's signal).
LOCAL_WORKERS: runtime.local_workers (default 1: TFF's own local runtime).
The workers' pids are written to PID_FILE, one a line, once the first computation has run.
"""

import os
import signal
import sys
import time

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from fedlm.cli.signals import install_signal_handlers
from fedlm.config import RuntimeConfig
from fedlm.federated import runtime, workers


@tff.federated_computation(tff.FederatedType(np.int32, tff.CLIENTS))
def total(values):
    return tff.federated_sum(values)


@tff.tensorflow.computation
def spin():
    return tf.while_loop(lambda i: i >= 0, lambda i: i + 1, [tf.constant(0, tf.int64)])


def main(mode: str, pid_file: str, local_workers: str = "1") -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started in background
    install_signal_handlers()
    with runtime.execution_context(RuntimeConfig(local_workers=int(local_workers))):
        result = total([1, 2, 3])
        if result != 6:
            sys.exit(f"federated sum gave {result}, expected 6")
        pids = workers.running_workers()
        if len(pids) != int(local_workers):
            sys.exit(f"{len(pids)} workers running, expected {local_workers}")
        with open(pid_file + ".tmp", "w") as f:
            f.write("\n".join(map(str, pids)))
        os.replace(pid_file + ".tmp", pid_file)
        print(" ".join(f"worker {pid}" for pid in pids), flush=True)
        if mode == "exception":
            raise RuntimeError("raised inside execution_context")
        if mode == "wait":
            time.sleep(300)
        if mode == "busy":
            spin()


if __name__ == "__main__":
    main(*sys.argv[1:])
