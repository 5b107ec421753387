"""How the server combines the clients' updates: TFF's aggregators from config, the privacy the
differentially private ones spend, and what every aggregator measures, as per-round metrics.

``aggregator.name`` -> the factory given to TFF's builders as ``model_aggregator``:

- ``mean``: none, so TFF's own default (a weighted or unweighted mean): results as before.
- ``dp_fixed``: ``tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed`` (DP-FedAvg,
  McMahan et al. 2018): each update clipped to ``clip``, Gaussian noise of stddev
  ``noise_multiplier * clip`` on the sum, divided by ``clients_per_round``.
- ``dp_adaptive``: ``DifferentiallyPrivateFactory.gaussian_adaptive`` (Andrew et al. 2021): the
  clip follows a private estimate of the ``target_quantile`` of the update norms; with
  ``zeroing=true``, ``tff.learning.dp_aggregator`` (the same, inside TFF's adaptive zeroing).
- ``compression``, ``robust``: ``tff.learning.compression_aggregator``, ``robust_aggregator``.
- ``secure``: ``tff.learning.secure_aggregator``, refused by ``config.validate_aggregator``:
  TFF 0.87's local runtime cannot run it.

Privacy (DP aggregators): fedlm's ``uniform`` sampler draws ``clients_per_round`` of the N clients
that have data, without replacement, every round. dp_accounting accounts for exactly that only
with its RDP accountant, under replace-one adjacency (one client's data replaced by another's),
where a clipped sum moves by up to 2 x clip. dp_accounting 0.4.3 applies a Gaussian event's
multiplier as noise / sensitivity, so the event carries ``noise_multiplier / 2``
(google/differential-privacy issue #378). For ``dp_adaptive`` the multiplier is TFF's total one:
TFF adds more noise to the update so that it and the noised clipped count together spend it.
epsilon after round r is a function of r alone, so a resumed run continues the accounting exactly.

Zeroing (``dp_adaptive`` with ``zeroing=true``) estimates its threshold from the clients' norms
without noise: that estimate and the zeroed count are outside the (epsilon, delta) reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import dp_accounting
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
from dp_accounting.rdp import rdp_privacy_accountant

from fedlm.config import AGGREGATORS, DP_AGGREGATORS, AggregatorConfig
from fedlm.errors import ConfigError

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


def build_aggregator(
    agg: AggregatorConfig, clients_per_round: int, weighted: bool
) -> tff.aggregators.AggregationFactory | None:
    """TFF's factory for ``agg`` (None: TFF's default mean); ``weighted`` follows the algorithm."""
    if agg.name == "mean":
        return None
    if agg.name == "dp_fixed":
        return tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
            agg.noise_multiplier, clients_per_round, agg.clip
        )
    if agg.name == "dp_adaptive":
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
    builders = {
        "compression": tff.learning.compression_aggregator,
        "secure": tff.learning.secure_aggregator,
        "robust": tff.learning.robust_aggregator,
    }
    if agg.name not in builders:
        raise ConfigError("aggregator.name", agg.name, AGGREGATORS)
    build = builders[agg.name]
    return build(zeroing=bool(agg.zeroing), clipping=bool(agg.clipping), weighted=weighted)


# -- privacy accounting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyAccountant:
    """(epsilon, delta) after r rounds of ``clients_per_round`` of ``num_clients`` clients drawn
    uniformly without replacement, Gaussian noise ``noise_multiplier`` x clip on the clipped sum."""

    noise_multiplier: float
    clients_per_round: int
    num_clients: int
    delta: float

    def round_event(self) -> dp_accounting.DpEvent:
        """One round, for dp_accounting's RDP accountant under replace-one adjacency."""
        if self.noise_multiplier == 0:
            return dp_accounting.NonPrivateDpEvent()
        return dp_accounting.SampledWithoutReplacementDpEvent(
            self.num_clients,
            self.clients_per_round,
            # replace-one moves a clipped sum by 2 x clip: noise per unit of sensitivity is z / 2
            dp_accounting.GaussianDpEvent(self.noise_multiplier / 2),
        )

    def event(self, rounds: int) -> dp_accounting.DpEvent:
        return dp_accounting.SelfComposedDpEvent(self.round_event(), rounds)

    @cached_property
    def _round_rdp(self) -> tuple[np.ndarray, np.ndarray]:
        # One round's RDP (about a second for fixed-size sampling); r rounds compose to r times it.
        accountant = self.new_accountant()
        accountant.compose(self.round_event())
        return np.array(accountant._orders), np.array(accountant._rdp)

    @staticmethod
    def new_accountant() -> rdp_privacy_accountant.RdpAccountant:
        return rdp_privacy_accountant.RdpAccountant(
            neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE
        )

    def epsilon(self, rounds: int) -> float:
        """epsilon at ``delta`` after ``rounds`` rounds (inf without noise, 0 before round 1)."""
        if rounds <= 0:
            return 0.0
        if self.noise_multiplier == 0:
            return math.inf
        orders, rdp = self._round_rdp
        epsilon, _ = rdp_privacy_accountant.compute_epsilon(orders, rounds * rdp, self.delta)
        return float(epsilon)

    def describe(self) -> str:
        return (
            f"RDP accountant (dp_accounting), {self.clients_per_round} of {self.num_clients} "
            f"clients a round uniformly without replacement, replace-one adjacency, noise "
            f"multiplier {self.noise_multiplier:g}, delta {self.delta:.3g}"
        )


def privacy_accountant(
    agg: AggregatorConfig, clients_per_round: int, num_clients: int
) -> PrivacyAccountant | None:
    """The accountant of a DP aggregator (None for the others); delta defaults to 1 / N."""
    if agg.name not in DP_AGGREGATORS:
        return None
    delta = agg.delta if agg.delta is not None else 1.0 / num_clients
    return PrivacyAccountant(agg.noise_multiplier, clients_per_round, num_clients, delta)


# -- what the aggregators measure -----------------------------------------------------------------


def encoded_bits(shape: Sequence[int]) -> int:
    """Bits one client sends for a tensor of ``shape`` through tff.learning.compression_aggregator:
    the size of what TFF's encoder (tensor_encoding's uniform quantization) emits for it, or
    float32 for tensors it leaves as they are."""
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
}


def measurement_metrics(measurements: object, clients: int) -> dict[str, float]:
    """``output.metrics["aggregator"]`` as metrics: the clip norm, the fractions of the round's
    clients whose updates were clipped or zeroed, and any other number TFF reports."""
    metrics = {}
    for path, value in _leaves(measurements):
        name = path[-1]
        if name in NAMED:
            is_count = name.endswith("_count")
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
    ):
        self.accountant = privacy_accountant(agg, clients_per_round, num_clients)
        self.bits_per_client = (
            sum(encoded_bits(shape) for shape in trainable_shapes)
            if agg.name == "compression"
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
            "fedlm.privacy.accounting": self.accountant.describe(),
        }
