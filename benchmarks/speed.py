"""fedlm's round loop and evaluation against plain TensorFlow doing the same work, in one run.

    uv run python benchmarks/speed.py                       # tutorial, reddi2021, mcmahan2017
    uv run python benchmarks/speed.py --settings reddi2021 --rounds 12
    uv run python benchmarks/speed.py --settings reddi2021 --long 300   # memory at round 50 vs 300
    uv run python benchmarks/speed.py --settings custom -- data=synthetic model=tiny ...
    uv run python benchmarks/speed.py --table A.json B.json   # the table of measured files
    uv run python benchmarks/speed.py --table A.json B.json --readme README.md   # put it there

For each setting, in one process:

1. fedlm: ``fedlm.experiment.run`` as ``fedlm-train`` would run it (tracking off, evaluation
   before the first and after the last round whatever the setting's schedule: :data:`QUIET`;
   no round's seconds include an evaluation), recording each round's seconds and tokens, the
   time from the start to the end of the first round, the final evaluation's seconds, and the
   resident memory of this process and of its TFF workers (sampled every 0.2 s).
2. plain TensorFlow, round by round right after fedlm's round of the same number (so that a
   machine that slows down or speeds up during the run affects both alike): the same clients
   (fedlm's own sampler, rebuilt with the same seed), the same batches (fedlm's own pipeline and
   per-client seeds, from the same in-memory snippets). Each round's client datasets are first
   read into memory (timed apart as ``read_seconds``: the pipeline's work, done by fedlm's
   workers while they train), then one compiled ``tf.function`` train step per
   batch (the same loss, metrics and client optimizer), each client starting from the server
   weights, then the server update of FedAvg with the same client weighting and the same
   ``tff.learning`` server optimizer, all with TensorFlow's default thread pools. Its final weights
   must equal fedlm's to float tolerance (reported), and its tokens per round must equal fedlm's
   (checked).
3. evaluation: fedlm's evaluator on its evaluation set against a Keras ``evaluate`` of the same
   batches held in memory, each warmed up once and then timed three times, alternately (median).

One definition of the figures (:func:`round_figures`), in the table and the JSON alike: the
ratio is the median over rounds 2 onward of the per-round ratios, fedlm's round i over plain
TensorFlow's round i (the first round pays for tracing and compilation); beside it the medians of
both sides over the same rounds, and each side's first round. Prints a Markdown table; ``--json
PATH`` writes everything measured, and ``--table PATH ...`` prints the table of such files (with
the projected time of a full-scale reddi2021 run) without measuring anything; with ``--readme
README.md`` it replaces the README's performance table (between :data:`TABLE_START` and
:data:`TABLE_END`) with it, so that table is always made from the committed JSON files. Speed
and memory are measured here, never in tests; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fedlm.cli.common import CONFIG_DIR, quiet_libraries
from fedlm.cli.train import run_context  # noqa: F401  (registers the schema and resolvers)
from fedlm.config import TrainConfig
from fedlm.experiment import Setup, prepare, run, starting_weights
from fedlm.federated import workers
from fedlm.federated.evaluation import CentralizedEvaluator
from fedlm.federated.process import build_optimizer
from fedlm.federated.runtime import usable_cores
from fedlm.rounds import due, round_datasets
from fedlm.tracking.base import Tracker

SETTINGS = {
    # The tutorial's own setting: two fixed clients of 5 batches, the Dickens GRU.
    "tutorial": ["+experiment=seed_tutorial"],
    # Reddi et al. 2021 at the paper's scale: 10 clients a round, a whole epoch each, evaluation
    # on the whole test split.
    "reddi2021": ["+experiment=reddi2021", "experiment_scale=full"],
    # McMahan et al. 2017, FedAvg E=1 B=10 with C=0.1 (112 clients a round).
    "mcmahan2017": ["+experiment=mcmahan2017", "experiment_scale=full"],
    "custom": [],
}
# The benchmark times training rounds, so it sets the evaluation schedule itself, whatever the
# setting's: before the first and after the last round only (eval.final_window=0 too: the
# reddi2021 study's window of 100 would be refused at fewer rounds), no generated text.
QUIET = [
    "tracking=none",
    "eval.every=0",
    "eval.final_window=0",
    "eval.generate_length=0",
    "output_dir=.",
]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except OSError:
        return 0.0


class MemorySampler:
    """Resident memory of this process and of fedlm's TFF workers, every ``interval`` s."""

    def __init__(self, interval: float = 0.2):
        self.samples: list[tuple[float, float, float]] = []  # (time, driver MiB, workers MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def now(self) -> tuple[float, float]:
        return rss_mib(os.getpid()), sum(rss_mib(p) for p in workers.running_workers())

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.samples.append((time.monotonic(), *self.now()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = 0.0, end: float = float("inf")) -> tuple[float, float]:
        inside = [(d, w) for t, d, w in self.samples if start <= t <= end] or [(0.0, 0.0)]
        return max(d for d, _ in inside), max(d + w for d, w in inside)


class Recorder(Tracker):
    """Keeps each logged step's metrics and when it was logged, and the memory at given rounds."""

    def __init__(self, memory: MemorySampler, memory_at: tuple[int, ...] = ()):
        self.steps: dict[int, dict[str, float]] = {}
        self.logged_at: dict[int, float] = {}
        self.memory = memory
        self.memory_at = set(memory_at)
        self.rss_at: dict[int, dict[str, float]] = {}

    plain: PlainFedAvg | None = None  # run each round of it right after fedlm's

    def log_metrics(self, metrics, step):
        self.logged_at[step] = time.monotonic()
        self.steps[step] = dict(metrics)
        if step in self.memory_at:
            driver, worker_total = self.memory.now()
            self.rss_at[step] = {"driver_mib": driver, "total_mib": driver + worker_total}
        if self.plain is not None and step >= 1:
            self.plain.round(step)


@dataclass
class PlainResult:
    round_seconds: list[float] = field(default_factory=list)
    read_seconds: list[float] = field(default_factory=list)
    round_tokens: list[int] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)


def compose_config(overrides: list[str], quiet: bool = True) -> TrainConfig:
    """The config of ``overrides``; ``quiet``: as the benchmark runs it (see QUIET), else with
    the setting's own evaluation schedule."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, *(QUIET if quiet else ["output_dir=."])])
    return OmegaConf.to_object(cfg)


class PlainFedAvg:
    """FedAvg in plain TensorFlow over fedlm's clients and batches (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, setup: Setup, start: list[np.ndarray]):
        if cfg.client_optimizer.name != "sgd" or cfg.client_optimizer.momentum:
            raise SystemExit("the plain loop implements client SGD without momentum only")
        if cfg.algorithm.name != "fedavg":
            raise SystemExit("the plain loop implements algorithm=fedavg only")
        self.cfg, self.setup, self.start = cfg, setup, start
        self.model = None  # made at the first round: after TFF has traced its own models
        self.result = PlainResult()

    def _build(self) -> None:
        task = self.setup.task
        model = self.model = task.keras_model()
        model.set_weights(self.start)
        loss_fn, metrics = task.loss(), task.metrics()
        optimizer = tf.keras.optimizers.SGD(learning_rate=self.cfg.client_optimizer.learning_rate)
        spec = (tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([None, None], tf.int64))
        ignore_id = task.pipeline.ignore_id

        @tf.function(input_signature=spec)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, logits)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            for m in metrics:
                m.update_state(y, logits)
            return tf.reduce_sum(tf.cast(tf.not_equal(y, ignore_id), tf.int64))

        self.train_step = train_step
        self.server_opt = build_optimizer(self.cfg.server_optimizer, "server_optimizer")
        self.server = [tf.constant(w) for w in model.get_weights()]
        specs = [tf.TensorSpec(w.shape, w.dtype) for w in self.server]
        self.server_state = self.server_opt.initialize(specs)

    def round(self, round_num: int) -> None:
        """Round ``round_num``: rounds must come in order (the sampler is fedlm's, rebuilt)."""
        if self.model is None:
            self._build()
        cfg, setup, out = self.cfg, self.setup, self.result
        started = time.monotonic()
        client_ids = setup.sampler.sample()
        datasets = round_datasets(
            setup.pipeline, setup.train_snippets, client_ids, cfg.training, cfg.seed, round_num
        )
        batches = [[(x, y) for x, y in d] for d in datasets]  # read before any train step
        read = time.monotonic() - started
        total = [np.zeros_like(w) for w in self.server]
        weight_sum, round_tokens = 0.0, 0
        for client in batches:
            self.model.set_weights(self.server)
            tokens = examples = 0
            for x, y in client:
                tokens += int(self.train_step(x, y))
                examples += int(x.shape[0])
            weight = {"num_tokens": tokens, "num_examples": examples, "uniform": 1}[
                cfg.algorithm.client_weighting
            ]
            trained = self.model.get_weights()
            for acc, w_start, w_end in zip(total, self.server, trained, strict=True):
                acc += weight * (w_start.numpy() - w_end)
            weight_sum += weight
            round_tokens += tokens
        update = [tf.constant(acc / weight_sum) for acc in total]
        self.server_state, self.server = self.server_opt.next(
            self.server_state, self.server, update
        )
        out.round_seconds.append(time.monotonic() - started)
        out.read_seconds.append(read)
        out.round_tokens.append(round_tokens)
        out.weights = [w.numpy() for w in self.server]


def keras_evaluator(cfg: TrainConfig, setup: Setup, weights):
    """A plain Keras ``evaluate`` of the evaluation batches in memory, as a callable."""
    batch_size = cfg.eval.batch_size or cfg.training.batch_size
    s = setup.eval_sequences
    dataset = tf.data.Dataset.from_tensor_slices((s.inputs, s.targets)).batch(batch_size)
    model = setup.task.compiled_keras_model()
    model.set_weights(weights)
    return lambda: float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def fedlm_evaluator(cfg: TrainConfig, setup: Setup, weights):
    """fedlm's evaluator on the same sequences, as a callable."""
    batch_size = cfg.eval.batch_size or cfg.training.batch_size
    evaluator = CentralizedEvaluator(setup.task, setup.eval_sequences, batch_size)
    model_weights = tff.learning.models.ModelWeights(trainable=weights, non_trainable=[])
    return lambda: float(evaluator(model_weights)["accuracy"])


def compare_evaluations(cfg: TrainConfig, setup: Setup, weights, repeats: int = 3) -> dict:
    """fedlm's evaluator and Keras ``evaluate``, each called once to warm up, then ``repeats``
    times alternately (a machine that drifts affects both alike); median seconds of each."""
    fedlm, keras = fedlm_evaluator(cfg, setup, weights), keras_evaluator(cfg, setup, weights)
    accuracy = {"fedlm": fedlm(), "keras": keras()}
    seconds: dict[str, list[float]] = {"fedlm": [], "keras": []}
    peak = 0.0
    for _ in range(repeats):
        for name, evaluate in (("fedlm", fedlm), ("keras", keras)):
            with MemorySampler(0.05) as memory:
                started = time.monotonic()
                evaluate()
                seconds[name].append(time.monotonic() - started)
            if name == "fedlm":
                peak = max(peak, memory.peak()[0])
    fed_seconds, keras_seconds = (statistics.median(seconds[k]) for k in ("fedlm", "keras"))
    return {
        "clients": len(setup.eval_sequences.client_ids),
        "sequences": setup.eval_sequences.num_sequences,
        "fedlm_seconds": fed_seconds,
        "keras_seconds": keras_seconds,
        "fedlm_seconds_each": seconds["fedlm"],
        "keras_seconds_each": seconds["keras"],
        "ratio": fed_seconds / keras_seconds,
        "accuracy_fedlm": accuracy["fedlm"],
        "accuracy_keras": accuracy["keras"],
        "fedlm_peak_driver_rss_mib": peak,
    }


def measure(name: str, overrides: list[str], rounds: int, long: int | None) -> dict:
    rounds = long or rounds
    cfg = compose_config([*SETTINGS[name], *overrides, f"training.rounds={rounds}"])

    def say(line: str) -> None:
        if long is None:
            print(f"  {line}", file=sys.stderr)

    print(f"[{name}] fedlm-train {' '.join(SETTINGS[name] + overrides)}", file=sys.stderr)
    memory_at = (50, long) if long else ()
    plain = None
    if not long:
        setup = prepare(cfg, say=lambda line: None)
        start = starting_weights(setup.task, setup.pretrained)  # fedlm's own: the same seeded draw
        plain = PlainFedAvg(cfg, setup, [np.asarray(w) for w in start.trainable])
    with MemorySampler() as memory:
        recorder = Recorder(memory, memory_at)
        recorder.plain = plain
        started = time.monotonic()
        result = run(cfg, recorder, say=say)
    steady = range(2, rounds + 1)
    seconds = [recorder.steps[r]["round/seconds"] for r in range(1, rounds + 1)]
    tokens = [int(recorder.steps[r]["train/num_tokens"]) for r in range(1, rounds + 1)]
    first_done = recorder.logged_at[1] - started
    last_eval = recorder.steps[rounds].get("eval/seconds")
    eval_window = (recorder.logged_at[rounds] - (last_eval or 0.0), recorder.logged_at[rounds])
    report = {
        "setting": name,
        "overrides": [*SETTINGS[name], *overrides],
        "rounds": rounds,
        "runtime": {
            "local_workers": cfg.runtime.local_workers,
            "intra_op_threads": cfg.runtime.intra_op_threads,
            "inter_op_threads": cfg.runtime.inter_op_threads,
            "loop_implementation": cfg.algorithm.loop_implementation,
        },
        "clients_per_round": cfg.training.clients_per_round,
        "fedlm": {
            "round_seconds": seconds,
            "round_tokens": tokens,
            "median_round_seconds": statistics.median(seconds[1:] or seconds),
            "first_round_seconds": seconds[0],
            "start_to_first_round_seconds": first_done,
            "characters_per_second": sum(tokens[1:]) / sum(seconds[1:]) if rounds > 1 else None,
            "peak_rss_mib": memory.peak()[1],
            "peak_driver_rss_mib": memory.peak()[0],
            "final_evaluation_seconds": last_eval,
            "final_evaluation_peak_driver_rss_mib": memory.peak(*eval_window)[0],
            "rss_at_round": recorder.rss_at,
        },
    }
    if long:
        return report

    p = plain.result
    if p.round_tokens != tokens:
        raise SystemExit(f"not the same work: tokens per round {p.round_tokens} != {tokens}")
    plain_steady = [p.round_seconds[r - 1] for r in steady]
    final = result.final_weights
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(p.weights, final, strict=True))
    figures = round_figures(seconds, p.round_seconds)
    report["fedlm"]["median_round_seconds"] = figures["fedlm_median_round_seconds"]
    report["plain"] = {
        "round_seconds": p.round_seconds,
        "read_seconds": p.read_seconds,
        "median_round_seconds": figures["plain_median_round_seconds"],
        "first_round_seconds": figures["plain_first_round_seconds"],
        "characters_per_second": sum(tokens[1:]) / sum(plain_steady) if rounds > 1 else None,
    }
    report.update(figures)
    report["max_weight_difference"] = difference

    if setup.eval_sequences is not None:
        print(f"[{name}] evaluation: fedlm's evaluator and Keras evaluate", file=sys.stderr)
        report["evaluation"] = compare_evaluations(cfg, setup, final)
    return report


def round_figures(fedlm: Sequence[float], plain: Sequence[float]) -> dict:
    """The benchmark's figures from each round's seconds of both loops (round 1 first): the ratio,
    the median over rounds 2 onward of fedlm's round i over plain TensorFlow's round i; the
    medians of both sides over the same rounds; each side's first round (tracing and compilation).
    With one round there is nothing to compare (None)."""
    if len(fedlm) != len(plain) or not fedlm:
        raise ValueError(f"rounds of both loops expected, got {len(fedlm)} and {len(plain)}")
    ratios = [f / p for f, p in zip(fedlm[1:], plain[1:], strict=True)]
    steady = len(fedlm) > 1
    return {
        "rounds_compared": [2, len(fedlm)] if steady else None,
        "round_ratios": ratios,
        "round_ratio": statistics.median(ratios) if steady else None,
        "fedlm_median_round_seconds": statistics.median(fedlm[1:]) if steady else None,
        "plain_median_round_seconds": statistics.median(plain[1:]) if steady else None,
        "fedlm_first_round_seconds": fedlm[0],
        "plain_first_round_seconds": plain[0],
    }


def figures_of(report: dict) -> dict:
    """:func:`round_figures` of a setting's report (also of a JSON written before the figures
    were stored: they are recomputed from its round seconds); {} without a plain loop."""
    if "plain" not in report:
        return {}
    return round_figures(report["fedlm"]["round_seconds"], report["plain"]["round_seconds"])


def evaluations_of(cfg: TrainConfig) -> int:
    """How many evaluations a run of ``cfg`` makes: round 0's, and those its schedule makes due."""
    t, e = cfg.training, cfg.eval
    return 1 + sum(due(e.every, r, t.rounds, e.final_window) for r in range(1, t.rounds + 1))


def projected_hours(report: dict, rounds: int, evaluations: int) -> float | None:
    """Hours of a run of ``rounds`` rounds with ``evaluations`` evaluations at the measured pace:
    the measured start to the end of round 1 (start-up, round 0's evaluation, round 1), then
    fedlm's median round for each further round and the measured evaluation for each further
    one (None: not measured). Checkpoints and tracking are not in it."""
    f, e = report["fedlm"], report.get("evaluation", {})
    median = figures_of(report).get("fedlm_median_round_seconds")
    first = f.get("start_to_first_round_seconds")
    evaluation = e.get("fedlm_seconds", f.get("final_evaluation_seconds"))
    if median is None or first is None or evaluation is None:
        return None
    return (first + (rounds - 1) * median + (evaluations - 1) * evaluation) / 3600.0


def table(reports: list[dict]) -> str:
    """The Markdown table of the settings' figures (:func:`round_figures`), and what it shows."""
    rows = [
        "| setting | rounds | fedlm s/round | plain TF s/round | ratio "
        "| first round fedlm / plain s | chars/s fedlm | start to first round s "
        "| eval fedlm / Keras s | peak RSS MiB | overrides |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    compared = set()
    for r in reports:
        f, e, figures = r["fedlm"], r.get("evaluation", {}), figures_of(r)
        if figures.get("rounds_compared"):
            compared.add(tuple(figures["rounds_compared"]))
        first = f"{num(f['first_round_seconds'], '{:.1f}')} / "
        first += num(figures.get("plain_first_round_seconds"), "{:.1f}")
        evaluation = f"{num(e.get('fedlm_seconds'))} / {num(e.get('keras_seconds'))}"
        rows.append(
            f"| {r['setting']} | {r['rounds']} "
            f"| {num(figures.get('fedlm_median_round_seconds', f['median_round_seconds']))} "
            f"| {num(figures.get('plain_median_round_seconds'))} "
            f"| {num(figures.get('round_ratio'))} | {first} "
            f"| {num(f['characters_per_second'], '{:,.0f}')} "
            f"| {num(f.get('start_to_first_round_seconds'), '{:.0f}')} | {evaluation} "
            f"| {num(f['peak_rss_mib'], '{:,.0f}')} | `{' '.join(r['overrides'])}` |"
        )
    spans = ", ".join(f"{a}–{b}" for a, b in sorted(compared)) or "none"
    rows += [
        "",
        f"Rounds compared: {spans}. Ratio: the median of the per-round ratios, fedlm's round i "
        "over plain TensorFlow's round i; s/round: the median of each side over the same rounds "
        "(so the ratio need not equal the ratio of the medians); first round: round 1 of each "
        "(tracing and compilation).",
    ]
    return "\n".join(rows)


def num(value, fmt: str = "{:.2f}") -> str:
    return fmt.format(value) if isinstance(value, int | float) else "–"


def projection_line(reports: list[dict]) -> str | None:
    """The projected time of a full-scale reddi2021 run with the paper's evaluation schedule,
    from the reddi2021 setting's figures (None without one)."""
    measured = next((r for r in reports if r["setting"] == "reddi2021" and "plain" in r), None)
    if measured is None:
        return None
    cfg = compose_config(SETTINGS["reddi2021"], quiet=False)  # the study's evaluation schedule
    evaluations = evaluations_of(cfg)
    hours = projected_hours(measured, cfg.training.rounds, evaluations)
    if hours is None:
        return None
    e = cfg.eval
    return (
        f"Projected full-scale reddi2021 run ({cfg.training.rounds} rounds; {evaluations} "
        f"evaluations of the whole test split: round 0, every {e.every} rounds and each of the "
        f"last {e.final_window}): {hours:.1f} h, from the start to round 1, the median round and "
        "the measured evaluation above (checkpoints and tracking not included)."
    )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["tutorial", "reddi2021", "mcmahan2017"],
        choices=list(SETTINGS),
    )
    parser.add_argument("--rounds", type=int, default=8, help="rounds per setting (default 8)")
    parser.add_argument(
        "--long",
        type=int,
        default=None,
        metavar="N",
        help="instead: run N rounds of fedlm alone (no evaluation between) and report the "
        "resident memory at round 50 and round N",
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument(
        "--table",
        nargs="+",
        default=None,
        metavar="JSON",
        help="instead: print the Markdown table of JSON files this benchmark wrote, their "
        "settings in order (measures nothing)",
    )
    parser.add_argument(
        "--readme",
        default=None,
        metavar="MARKDOWN",
        help="with --table: also put the table in this file, between its table markers",
    )
    parser.add_argument("overrides", nargs="*", help="fedlm-train overrides for every setting")
    args = parser.parse_args(argv)
    if args.readme and not args.table:
        parser.error("--readme needs --table JSON ...")
    if args.table:
        reports = read_reports(args.table)
        print(table_block(reports))
        if args.readme:
            write_table(args.readme, args.table, reports)
        return reports
    quiet_libraries()
    reports = []
    for name in args.settings:
        reports.append(measure(name, args.overrides, args.rounds, args.long))
    machine = {
        "cores": usable_cores(),
        "processor": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
        "tff": tff.__version__,
        "load_average_at_end": os.getloadavg(),
    }
    if args.json:
        write_atomically(args.json, json.dumps({"machine": machine, "settings": reports}, indent=2))
    if args.long:
        for r in reports:
            print(json.dumps({"setting": r["setting"], "rss_at_round": r["fedlm"]["rss_at_round"]}))
    else:
        print(table_block(reports))
    return reports


def read_reports(paths: Sequence[str]) -> list[dict]:
    """The settings of the JSON files ``paths`` (as ``--json`` writes them), in order."""
    reports = []
    for path in paths:
        try:
            with open(path) as f:
                reports += json.load(f)["settings"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(
                f"--table {path}: not a JSON file of this benchmark ({type(e).__name__}: {e}); "
                "expected one that --json wrote, with a 'settings' list"
            ) from e
    return reports


def table_block(reports: list[dict]) -> str:
    """The table, and the projected full-scale reddi2021 run where reddi2021 was measured."""
    projection = projection_line(reports)
    return table(reports) + (f"\n\n{projection}" if projection else "")


TABLE_START = "<!-- speed table: made by `uv run python benchmarks/speed.py --table{files}` -->"
TABLE_END = "<!-- end of speed table -->"


def table_markers(paths: Sequence[str]) -> tuple[str, str]:
    return TABLE_START.format(files="".join(f" {p}" for p in paths)), TABLE_END


def write_table(markdown: str, paths: Sequence[str], reports: list[dict]) -> None:
    """Replace the block between the table markers of ``markdown`` (naming ``paths``) with the
    table of ``reports``, atomically."""
    start, end = table_markers(paths)
    with open(markdown) as f:
        text = f.read()
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise SystemExit(
            f"--readme {markdown}: expected the line {start!r} once, and after it the line "
            f"{end!r} once, around the table to replace"
        )
    before, rest = text.split(start)
    after = rest.split(end, 1)[1]
    write_atomically(markdown, f"{before}{start}\n{table_block(reports)}\n{end}{after}")


def write_atomically(path: str, text: str) -> None:
    """``text`` into ``path`` by a temporary file in the same folder, renamed into place."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, path)


if __name__ == "__main__":
    main()
