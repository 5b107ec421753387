"""How fast one plain TensorFlow train step of the Reddi et al. model is under each thread setting.

    uv run python benchmarks/threads.py                 # 200 steps per setting
    uv run python benchmarks/threads.py --steps 400 --json threads.json

The step: ``lstm_2x256`` (TFF's Shakespeare baseline model, fedlm's build), one batch of 4
sequences of 80 ids, loss and SGD as fedlm trains a client, in one compiled ``tf.function``. Each
setting runs in a fresh process (TensorFlow reads ``TF_NUM_INTRAOP_THREADS`` and
``TF_NUM_INTEROP_THREADS`` once, at start): TensorFlow's defaults, 1/1, 1/2, 2/1, 2/2, and two
1/1 processes at the same time (what one single-threaded worker per core would give). This is the
plain-TensorFlow side of the thread choice in ``conf/runtime/local.yaml``; what the same settings
give inside TFF's workers is measured with ``benchmarks/speed.py`` (``runtime.intra_op_threads``,
``runtime.inter_op_threads``). Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SETTINGS = [(None, None), (1, 1), (1, 2), (2, 1), (2, 2)]


def step_seconds(steps: int) -> float:
    """Seconds per train step in this process, after 20 warm-up steps."""
    import numpy as np
    import tensorflow as tf

    from fedlm.config import ModelConfig
    from fedlm.data.pipelines import build_pipeline
    from fedlm.federated.task import Task

    task = Task(build_pipeline("paper", seq_len=80, batch_size=4), ModelConfig(name="lstm_2x256"))
    model = task.keras_model()
    loss_fn = task.loss()
    optimizer = tf.keras.optimizers.SGD(1.0)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(1, task.vocab_size, size=(4, 80)), tf.int64)
    y = tf.constant(rng.integers(1, task.vocab_size, size=(4, 80)), tf.int64)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    for _ in range(20):
        step(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return (time.perf_counter() - start) / steps


def _start(intra: int | None, inter: int | None, steps: int) -> subprocess.Popen:
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", **os.environ}
    for key, value in (("TF_NUM_INTRAOP_THREADS", intra), ("TF_NUM_INTEROP_THREADS", inter)):
        env.pop(key, None)
        if value is not None:
            env[key] = str(value)
    command = [sys.executable, __file__, "--child", "--steps", str(steps)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen) -> float:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a benchmark process failed (exit {process.returncode})")
    return float(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per process")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(step_seconds(args.steps))
        return

    rows = []
    for intra, inter in SETTINGS:
        ms = _result(_start(intra, inter, args.steps)) * 1000
        label = "TensorFlow's defaults" if intra is None else f"{intra}/{inter}"
        rows.append({"setting": label, "processes": 1, "ms_per_step": ms, "steps_per_s": 1000 / ms})
    pair = [_start(1, 1, args.steps) for _ in range(2)]
    each = [_result(p) * 1000 for p in pair]
    rows.append(
        {
            "setting": "two 1/1 processes at once",
            "processes": 2,
            "ms_per_step": each,
            "steps_per_s": sum(1000 / ms for ms in each),
        }
    )
    print("| intra/inter-op threads | ms per step | steps per second (all processes) |")
    print("|---|---:|---:|")
    for row in rows:
        ms = row["ms_per_step"]
        shown = ms if isinstance(ms, float) else sum(ms) / len(ms)
        suffix = "" if isinstance(ms, float) else " each"
        print(f"| {row['setting']} | {shown:.0f}{suffix} | {row['steps_per_s']:.1f} |")
    if args.json:
        machine = {"cores": os.cpu_count(), "load_average_at_end": os.getloadavg()}
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "steps": args.steps, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
