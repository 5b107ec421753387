"""Unrolled against looped recurrent layers: one train step and one evaluation batch, alternated.

    uv run python benchmarks/unroll.py                 # the papers' LSTM and the tutorial's GRU
    uv run python benchmarks/unroll.py --json benchmarks/measured/unroll_2core.json

For each shipped model at its study's sizes (``lstm_2x256``: the papers' batch 4, sequences of 80,
vocabulary 90, padding masked; ``dickens_gru``: the tutorial's batch 8, sequences of 100,
vocabulary 86), two Keras models with the same weights are built with fedlm's builder, one with
``model.unroll=false`` (today's looped layers, variable length) and one fixed at the sequence
length and unrolled. Each gets one compiled ``tf.function`` SGD train step and one compiled
forward pass for an evaluation batch; after a warm-up the two are timed alternately
``--repeats`` times (so a machine that speeds up or slows down affects both alike) and the
medians and their ratio printed. The first call's seconds (tracing, compiling) are reported too.
The losses of the two must agree to float tolerance (checked). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time

import numpy as np
import tensorflow as tf

from fedlm.config import ModelConfig
from fedlm.models.architectures import build_model

SETTINGS = {
    "lstm_2x256": dict(
        model=ModelConfig(name="lstm_2x256", cell="lstm", embedding_dim=8, units=256, layers=2),
        vocab=90,
        batch=4,
        seq_len=80,
        mask_zero=True,
        eval_batch=1024,
    ),
    "dickens_gru": dict(
        model=ModelConfig(name="dickens_gru", cell="gru", embedding_dim=256, units=1024, layers=1),
        vocab=86,
        batch=8,
        seq_len=100,
        mask_zero=False,
        eval_batch=64,
    ),
}


def steps(model: tf.keras.Model):
    optimizer = tf.keras.optimizers.SGD(1.0)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=True,
            )
        )
        return loss

    @tf.function
    def forward(x, y):
        return loss_fn(y, model(x, training=False))

    return train, forward


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args).numpy()
    return time.perf_counter() - started


def measure(name: str, repeats: int) -> dict:
    s = SETTINGS[name]
    rng = np.random.default_rng(0)
    x = rng.integers(1, s["vocab"], size=(s["batch"], s["seq_len"]))
    y = rng.integers(1, s["vocab"], size=(s["batch"], s["seq_len"]))
    ex = rng.integers(1, s["vocab"], size=(s["eval_batch"], s["seq_len"]))
    ey = rng.integers(1, s["vocab"], size=(s["eval_batch"], s["seq_len"]))
    x, y, ex, ey = (tf.constant(a, tf.int64) for a in (x, y, ex, ey))
    tf.keras.utils.set_random_seed(0)
    looped = build_model(
        dataclasses.replace(s["model"], unroll=False), s["vocab"], mask_zero=s["mask_zero"]
    )
    unrolled = build_model(s["model"], s["vocab"], mask_zero=s["mask_zero"], seq_len=s["seq_len"])
    unrolled.set_weights(looped.get_weights())
    kinds = {"looped": steps(looped), "unrolled": steps(unrolled)}
    first = {}
    losses = {}
    for kind, (train, forward) in kinds.items():
        losses[kind] = float(forward(ex, ey))
        first[kind] = {"train_s": timed(train, x, y), "eval_s": timed(forward, ex, ey)}
    np.testing.assert_allclose(losses["looped"], losses["unrolled"], rtol=1e-5)
    times = {kind: {"train_s": [], "eval_s": []} for kind in kinds}
    for _ in range(repeats):
        for kind, (train, _) in kinds.items():
            times[kind]["train_s"].append(timed(train, x, y))
        for kind, (_, forward) in kinds.items():
            times[kind]["eval_s"].append(timed(forward, ex, ey))
    medians = {k: {m: statistics.median(v) for m, v in t.items()} for k, t in times.items()}
    return {
        "batch": s["batch"],
        "seq_len": s["seq_len"],
        "eval_batch": s["eval_batch"],
        "first_call": first,
        "median": medians,
        "ratio_train": medians["unrolled"]["train_s"] / medians["looped"]["train_s"],
        "ratio_eval": medians["unrolled"]["eval_s"] / medians["looped"]["eval_s"],
        "repeats": repeats,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args(argv)
    results = {name: measure(name, args.repeats) for name in args.models}
    print(
        "| model | batch x length | train step looped ms | unrolled ms | ratio | "
        "eval batch | eval looped ms | unrolled ms | ratio | first train step looped / "
        "unrolled s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        m, f = r["median"], r["first_call"]
        print(
            f"| {name} | {r['batch']} x {r['seq_len']} | {1e3 * m['looped']['train_s']:.1f} | "
            f"{1e3 * m['unrolled']['train_s']:.1f} | {r['ratio_train']:.2f} | {r['eval_batch']} | "
            f"{1e3 * m['looped']['eval_s']:.0f} | {1e3 * m['unrolled']['eval_s']:.0f} | "
            f"{r['ratio_eval']:.2f} | {f['looped']['train_s']:.1f} / "
            f"{f['unrolled']['train_s']:.1f} |"
        )
    if args.json:
        out = {
            "machine": {
                "cores": len(os.sched_getaffinity(0)),
                "python": platform.python_version(),
                "tensorflow": tf.__version__,
            },
            "results": results,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
