"""How the server combines the clients' updates: TFF's aggregators from config, the privacy the
differentially private ones spend, and what every aggregator measures, as per-round metrics.

``aggregator.name`` -> the factory given to TFF's builders as ``model_aggregator``:

- ``mean``: none, so TFF's own default (a weighted or unweighted mean): results as before.
- ``dp_fixed``: ``tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed`` (DP-FedAvg,
  McMahan et al. 2018): each update clipped to ``clip``, Gaussian noise of stddev
  ``noise_multiplier * clip`` on the sum, divided by ``clients_per_round`` (with
  ``sampler=poisson`` the expected cohort: McMahan et al.'s fixed-denominator estimate).
- ``dp_adaptive``: ``DifferentiallyPrivateFactory.gaussian_adaptive`` (Andrew et al. 2021): the
  clip follows a private estimate of the ``target_quantile`` of the update norms; with
  ``zeroing=true``, ``tff.learning.dp_aggregator`` (the same, inside TFF's adaptive zeroing).
- ``compression``, ``robust``: ``tff.learning.compression_aggregator``, ``robust_aggregator``.
- ``secure``: ``tff.learning.secure_aggregator``, refused by :func:`check_aggregator`: TFF 0.87's
  local runtime cannot run it.

The privacy the DP aggregators spend is accounted in ``fedlm/federated/privacy.py``. TensorFlow
and dp_accounting are imported where they are used, so that ``fedlm-train`` checks a config
(:func:`check_aggregator`) in a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from fedlm.config import AggregatorConfig, TrainConfig, at_least, one_of, positive
from fedlm.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow_federated as tff

# tff.learning.compression_aggregator's fixed settings (TFF 0.87, model_update_aggregator.py):
# 8-bit uniform quantization of every tensor with more than 20,000 elements.
QUANTIZATION_BITS = 8
QUANTIZATION_THRESHOLD = 20000


def clipped_count_stddev(agg: AggregatorConfig, clients_per_round: int) -> float:
    """The noise on dp_adaptive's count of unclipped updates.

    Null: TFF's default 0.05 x clients_per_round (Andrew et al.'s m / 20), raised to the noise
    multiplier where it is smaller. TFF refuses a noise multiplier of twice this stddev or more,
    and at the raised value the count spends at most a quarter of the privacy budget (TFF then
    adds noise of 1.155 x noise_multiplier to the update instead of 1 x).
    """
    if agg.clipped_count_stddev is not None:
        return agg.clipped_count_stddev
    if agg.noise_multiplier == 0:
        return 0.0
    return max(0.05 * clients_per_round, agg.noise_multiplier)


def _mean(agg: AggregatorConfig, clients_per_round: int, weighted: bool) -> None:
    return None  # TFF's builders' own default


def _dp_fixed(agg: AggregatorConfig, clients_per_round: int, weighted: bool):
    import tensorflow_federated as tff

    return tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
        agg.noise_multiplier, clients_per_round, agg.clip
    )


def _dp_adaptive(agg: AggregatorConfig, clients_per_round: int, weighted: bool):
    import tensorflow_federated as tff

    if agg.zeroing:
        return tff.learning.dp_aggregator(agg.noise_multiplier, clients_per_round, zeroing=True)
    given = {
        "initial_l2_norm_clip": agg.initial_clip,
        "target_unclipped_quantile": agg.target_quantile,
        "learning_rate": agg.clip_learning_rate,
    }
    return tff.aggregators.DifferentiallyPrivateFactory.gaussian_adaptive(
        agg.noise_multiplier,
        clients_per_round,
        clipped_count_stddev=clipped_count_stddev(agg, clients_per_round),
        **{k: v for k, v in given.items() if v is not None},
    )


def _tff_learning(name: str) -> Callable:
    """``tff.learning.<name>_aggregator``, with its adaptive zeroing and clipping."""

    def build(agg: AggregatorConfig, clients_per_round: int, weighted: bool):
        import tensorflow_federated as tff

        builder = getattr(tff.learning, f"{name}_aggregator")
        return builder(zeroing=bool(agg.zeroing), clipping=bool(agg.clipping), weighted=weighted)

    return build


@dataclass(frozen=True)
class Aggregator:
    build: Callable  # (aggregator config, clients_per_round, weighted) -> TFF's factory or None
    takes: tuple[str, ...] = ()  # the AggregatorConfig keys besides name and measure_norms
    private: bool = False  # Gaussian noise on clipped updates: the privacy spent is accounted
    refused: str = ""  # why fedlm cannot run it ('': it can)
    quantizes: bool = False  # sends fewer bits than float32: bits_per_client is logged


ADAPTIVE_CLIP_FIELDS = ("initial_clip", "target_quantile", "clip_learning_rate")
# aggregator.name (conf/aggregator/)
AGGREGATORS = {
    "mean": Aggregator(_mean),
    "dp_fixed": Aggregator(_dp_fixed, ("noise_multiplier", "clip", "delta"), private=True),
    "dp_adaptive": Aggregator(
        _dp_adaptive,
        ("noise_multiplier", *ADAPTIVE_CLIP_FIELDS, "clipped_count_stddev", "delta", "zeroing"),
        private=True,
    ),
    "compression": Aggregator(
        _tff_learning("compression"), ("zeroing", "clipping"), quantizes=True
    ),
    # What TFF 0.87's runtimes execute: secure aggregation's tff.federated_secure_sum_bitwidth
    # fails in the local C++ runtime; only TFF's test context (tff.backends.test), which replaces
    # the secure sum by a plain one, runs it.
    "secure": Aggregator(
        _tff_learning("secure"),
        ("zeroing", "clipping"),
        refused="TFF 0.87's local C++ runtime cannot run tff.learning.secure_aggregator (its "
        "tff.federated_secure_sum_bitwidth fails with 'Cannot embed a federated value'); only "
        "TFF's test context, which replaces the secure sum with a plain one, runs it",
    ),
    "robust": Aggregator(_tff_learning("robust"), ("zeroing", "clipping")),
}
# The samplers whose cohorts fedlm's privacy accounting covers (fedlm/federated/privacy.py).
DP_SAMPLERS = ("uniform", "poisson")


def build_aggregator(
    agg: AggregatorConfig, clients_per_round: int, weighted: bool
) -> tff.aggregators.AggregationFactory | None:
    """TFF's factory for ``agg`` (None: TFF's default mean); ``weighted`` follows the algorithm.
    With ``measure_norms``, wrapped in ``tff.learning.add_debug_measurements`` (the mean then
    passed as TFF's builders make it by default), which measures without changing the aggregate."""
    factory = AGGREGATORS[agg.name].build(agg, clients_per_round, weighted)
    if not agg.measure_norms:
        return factory
    import tensorflow_federated as tff

    if factory is None:  # TFF's builders' default
        factory = (
            tff.aggregators.MeanFactory() if weighted else tff.aggregators.UnweightedMeanFactory()
        )
    return tff.learning.add_debug_measurements(factory)


# -- what validation checks -----------------------------------------------------------------------


def check_aggregator(cfg: TrainConfig, weighted: bool) -> None:
    """The aggregator's keys, and the combinations TFF can build and fedlm can account for;
    ``weighted``: whether the algorithm weighs its clients (as :func:`build_aggregator`)."""
    agg = cfg.aggregator
    one_of("aggregator.name", agg.name, AGGREGATORS)
    kind = AGGREGATORS[agg.name]
    for name in (f.name for f in fields(agg) if f.name not in ("name", "measure_norms")):
        value = getattr(agg, name)
        if value is not None and name not in kind.takes:
            allowed = f"only {', '.join(kind.takes)}" if kind.takes else "no other key"
            raise ConfigError(
                f"aggregator.{name}",
                value,
                f"null: aggregator.name={agg.name!r} takes {allowed} (aggregator=<name> picks one)",
            )
    if not isinstance(agg.measure_norms, bool):
        raise ConfigError("aggregator.measure_norms", agg.measure_norms, "true or false")
    if kind.refused:
        runnable = ", ".join(name for name, a in AGGREGATORS.items() if not a.refused)
        raise ConfigError("aggregator.name", agg.name, f"one of {runnable}: {kind.refused}")
    if kind.private:
        _check_private(cfg, weighted)


def _check_private(cfg: TrainConfig, weighted: bool) -> None:
    """A DP aggregator: its noise and clip, and the weighting and sampling its privacy needs."""
    agg = cfg.aggregator
    if agg.noise_multiplier is None:
        raise ConfigError(
            "aggregator.noise_multiplier", None, "a number >= 0 (noise stddev / clip norm)"
        )
    at_least("aggregator.noise_multiplier", agg.noise_multiplier, 0.0)
    if "clip" in AGGREGATORS[agg.name].takes:  # a fixed clip
        positive("aggregator.clip", agg.clip)
    if agg.initial_clip is not None:
        positive("aggregator.initial_clip", agg.initial_clip)
    if agg.target_quantile is not None and not 0.0 <= agg.target_quantile <= 1.0:
        raise ConfigError("aggregator.target_quantile", agg.target_quantile, "a number in [0, 1]")
    at_least("aggregator.clip_learning_rate", agg.clip_learning_rate, 0.0, allow_none=True)
    at_least("aggregator.clipped_count_stddev", agg.clipped_count_stddev, 0.0, allow_none=True)
    if agg.delta is not None and not 0.0 < agg.delta < 1.0:
        raise ConfigError("aggregator.delta", agg.delta, "a number in (0, 1), or null")
    if weighted and cfg.algorithm.client_weighting != "uniform":
        raise ConfigError(
            "algorithm.client_weighting",
            cfg.algorithm.client_weighting,
            f"'uniform' with aggregator.name={agg.name!r} (TFF's DP aggregators average the "
            "clients unweighted), or algorithm=fedavg_unweighted",
        )
    if cfg.sampler.name not in DP_SAMPLERS:
        raise ConfigError(
            "sampler.name",
            cfg.sampler.name,
            f"'uniform' or 'poisson' with aggregator.name={agg.name!r}: the privacy accountant "
            "covers clients_per_round clients drawn uniformly without replacement (uniform, "
            "replace-one) and each client drawn with probability clients_per_round / N "
            "(poisson, add-or-remove)",
        )
    if "initial_clip" in AGGREGATORS[agg.name].takes and agg.noise_multiplier > 0:  # adaptive
        _check_adaptive_noise(agg, cfg.training.clients_per_round)


def _check_adaptive_noise(agg: AggregatorConfig, clients: int) -> None:
    """dp_adaptive with noise: the clipped count's noise that TFF's adaptive clipping needs."""
    z = agg.noise_multiplier
    if agg.zeroing:
        for name in (*ADAPTIVE_CLIP_FIELDS, "clipped_count_stddev"):
            if getattr(agg, name) is not None:
                raise ConfigError(
                    f"aggregator.{name}",
                    getattr(agg, name),
                    "null with aggregator.zeroing=true (tff.learning.dp_aggregator, the one with "
                    "zeroing, keeps TFF's adaptive-clipping defaults); aggregator.zeroing=false "
                    "takes them",
                )
        if z >= 2 * 0.05 * clients:
            raise ConfigError(
                "aggregator.zeroing",
                True,
                f"false for noise_multiplier={z} with {clients} clients per round: "
                "tff.learning.dp_aggregator's clipped-count noise, 0.05 x clients_per_round = "
                f"{0.05 * clients:g}, must exceed noise_multiplier / 2",
            )
    elif agg.clipped_count_stddev is not None and z >= 2 * agg.clipped_count_stddev:
        raise ConfigError(
            "aggregator.clipped_count_stddev",
            agg.clipped_count_stddev,
            f"a number > noise_multiplier / 2 = {z / 2:g}, or null: TFF's adaptive clipping "
            f"cannot reach noise_multiplier={z} otherwise",
        )


# -- what the aggregators measure -----------------------------------------------------------------


def encoded_bits(shape: Sequence[int]) -> int:
    """Bits one client sends for a tensor of ``shape`` through tff.learning.compression_aggregator:
    the size of what TFF's encoder (tensor_encoding's uniform quantization) emits for it, or
    float32 for tensors it leaves as they are."""
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.internal import tensor_encoding as te

    size = int(np.prod(shape, dtype=np.int64))
    if size <= QUANTIZATION_THRESHOLD:
        return 32 * size
    spec = tf.TensorSpec([size], tf.float32)
    encoder = te.core.SimpleEncoder(te.encoders.uniform_quantization(QUANTIZATION_BITS), spec)
    state = encoder.initial_state()
    # Traced, not run: the encoded tensors' static shapes are all that is needed.
    encode = tf.function(lambda x: encoder.encode(x, state)[0]).get_concrete_function(spec)
    encoded = tf.nest.flatten(encode.structured_outputs)
    return sum(t.dtype.size * 8 * t.shape.num_elements() for t in encoded)


def _leaves(measurements: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple, float]]:
    if isinstance(measurements, Mapping):
        for key, value in measurements.items():
            yield from _leaves(value, (*path, str(key)))
    elif isinstance(measurements, (list, tuple)):
        for i, value in enumerate(measurements):
            yield from _leaves(value, (*path, str(i)))
    elif np.ndim(measurements) == 0:
        yield path, float(measurements)


# TFF's measurement name -> fedlm's metric; counts become fractions of the round's clients.
NAMED = {
    "clip": "clip_norm",  # dp_adaptive: the adaptive clip (DifferentiallyPrivateFactory)
    "clipping_norm": "clip_norm",  # robust and compression: TFF's clipping_factory
    "zeroing_norm": "zeroing_norm",
    "clipped_count": "clipped_fraction",
    "zeroed_count": "zeroed_fraction",
    # measure_norms (tff.learning.add_debug_measurements): the clients' update norms
    "average_client_norm": "client_norm_mean",
    "std_dev_client_norm": "client_norm_std",
    "server_update_norm": "server_update_norm",
}


def measurement_metrics(measurements: object, clients: int) -> dict[str, float]:
    """``output.metrics["aggregator"]`` as metrics: the clip norm, the fractions of the round's
    clients whose updates were clipped or zeroed (none in a round without clients), and any other
    number TFF reports."""
    metrics = {}
    for path, value in _leaves(measurements):
        name = path[-1]
        if name in NAMED:
            is_count = name.endswith("_count")
            if is_count and clients == 0:
                continue
            metrics[f"aggregator/{NAMED[name]}"] = value / clients if is_count else value
        else:
            metrics["aggregator/" + "/".join(path)] = value
    return metrics


class AggregatorMetrics:
    """What the round loop records about the aggregator: measurements, privacy, bits sent."""

    def __init__(
        self,
        agg: AggregatorConfig,
        clients_per_round: int,
        num_clients: int,
        trainable_shapes: Sequence[Sequence[int]] = (),
        sampler: str = "uniform",
    ):
        self.accountant = None
        if AGGREGATORS[agg.name].private:
            from fedlm.federated.privacy import privacy_accountant  # dp_accounting: 3 s to import

            self.accountant = privacy_accountant(agg, sampler, clients_per_round, num_clients)
        self.bits_per_client = (
            sum(encoded_bits(shape) for shape in trainable_shapes)
            if AGGREGATORS[agg.name].quantizes
            else None
        )

    def round_metrics(self, measurements: object, round_num: int, clients: int) -> dict:
        """Metrics of round ``round_num`` from the process output's aggregator measurements."""
        metrics = measurement_metrics(measurements, clients)
        if self.bits_per_client is not None:
            metrics["aggregator/bits_per_client"] = float(self.bits_per_client)
        if self.accountant is not None:
            metrics["privacy/epsilon"] = self.accountant.epsilon(round_num)
            metrics["privacy/delta"] = self.accountant.delta
        return metrics

    @staticmethod
    def progress(metrics: Mapping[str, float]) -> str:
        """The round line's privacy part ('' without a DP aggregator)."""
        if "privacy/epsilon" not in metrics:
            return ""
        return f" | epsilon={metrics['privacy/epsilon']:.3g} (delta={metrics['privacy/delta']:.2g})"

    def tags(self, rounds: int) -> dict[str, str]:
        """Run tags after ``rounds`` rounds: the privacy spent and how it was accounted."""
        if self.accountant is None:
            return {}
        return {
            "fedlm.privacy.epsilon": f"{self.accountant.epsilon(rounds):.6g}",
            "fedlm.privacy.delta": f"{self.accountant.delta:.6g}",
            "fedlm.privacy.rounds": str(rounds),
            "fedlm.privacy.adjacency": self.accountant.adjacency,
            "fedlm.privacy.accounting": self.accountant.describe(),
        }
