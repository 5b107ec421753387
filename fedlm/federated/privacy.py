"""The privacy a DP aggregator spends: (epsilon, delta) after each round, for the way fedlm draws
the round's clients. Every figure is user-level (one client's data, all of it) and is a
function of the round alone, so a resumed run continues its accounting exactly.

- ``sampler=uniform`` (``clients_per_round`` of the N clients with data, without replacement):
  dp_accounting's RDP accountant for sampling without replacement, under replace-one adjacency
  (one client's data replaced by another's; Andrew et al. 2021), where a clipped sum moves by up
  to 2 x clip. dp_accounting 0.4.3 reads a Gaussian event's multiplier as noise / sensitivity, so
  the event carries ``noise_multiplier / 2`` (google/differential-privacy issue #378). Each RDP
  order is capped at the unsampled Gaussian mechanism's: the bound for sampling (Wang, Balle and
  Kasiviswanathan 2019) is loose for large cohorts, and a round that uses a subset of the clients
  cannot cost more than one that uses all of them (RDP is quasi-convex in a mixture of pairs that
  each differ in at most one client), so the smaller value holds at every order.
- ``sampler=poisson`` (each client independently with probability ``clients_per_round / N``):
  dp_accounting's PLD accountant, under add-or-remove adjacency (one client's data there or not,
  the convention of most DP-FL papers), where a clipped sum moves by up to the clip, so the event
  carries the full ``noise_multiplier``.
- ``aggregator.zeroing=true``: no finite epsilon, because TFF estimates the zeroing threshold
  from the clients' update norms without noise.

For ``dp_adaptive`` the multiplier is TFF's total one: TFF adds more noise to the update so that
it and the noised clipped count together spend it, under either adjacency. delta defaults to
1 / N^1.1 (``DELTA_EXPONENT``), below the 1 / N at which releasing one client's data whole would
already meet the guarantee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import dp_accounting
import numpy as np
from dp_accounting.pld import privacy_loss_distribution
from dp_accounting.rdp import rdp_privacy_accountant

from fedlm.config import AggregatorConfig

DELTA_EXPONENT = 1.1  # default delta: 1 / N ** DELTA_EXPONENT
# dp_accounting's PLDAccountant default: the grid of privacy-loss values its PLDs are kept on.
PLD_DISCRETIZATION = 1e-4
ZEROING_REASON = (
    "aggregator.zeroing=true estimates the zeroing threshold from the clients' update norms "
    "without noise, so no finite epsilon holds"
)


def default_delta(num_clients: int) -> float:
    return 1.0 / num_clients**DELTA_EXPONENT


def _rdp(event: dp_accounting.DpEvent) -> tuple[np.ndarray, np.ndarray]:
    """The RDP orders and values of one ``event`` under replace-one adjacency."""
    accountant = rdp_privacy_accountant.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE
    )
    accountant.compose(event)
    return np.array(accountant._orders), np.array(accountant._rdp)


@dataclass(frozen=True)
class FixedSizeAccountant:
    """(epsilon, delta) after r rounds of ``clients_per_round`` of ``num_clients`` clients drawn
    uniformly without replacement, Gaussian noise ``noise_multiplier`` x clip on the clipped sum;
    replace-one adjacency, RDP capped at the unsampled Gaussian's."""

    noise_multiplier: float
    clients_per_round: int
    num_clients: int
    delta: float
    adjacency: ClassVar[str] = "replace_one"

    def unsampled_event(self) -> dp_accounting.DpEvent:
        # replace-one moves a clipped sum by 2 x clip: noise per unit of sensitivity is z / 2
        return dp_accounting.GaussianDpEvent(self.noise_multiplier / 2)

    def round_event(self) -> dp_accounting.DpEvent:
        """One round, for dp_accounting's RDP accountant under replace-one adjacency."""
        if self.noise_multiplier == 0:
            return dp_accounting.NonPrivateDpEvent()
        return dp_accounting.SampledWithoutReplacementDpEvent(
            self.num_clients, self.clients_per_round, self.unsampled_event()
        )

    @cached_property
    def round_rdp(self) -> tuple[np.ndarray, np.ndarray]:
        """One round's RDP at each order, capped; r rounds compose to r times it. About a second
        for sampling, so computed once."""
        orders, sampled = _rdp(self.round_event())
        _, unsampled = _rdp(self.unsampled_event())  # at the same (dp_accounting's) orders
        return orders, np.minimum(sampled, unsampled)

    def epsilon(self, rounds: int) -> float:
        """epsilon at ``delta`` after ``rounds`` rounds (inf without noise, 0 before round 1)."""
        if rounds <= 0:
            return 0.0
        if self.noise_multiplier == 0:
            return math.inf
        orders, rdp = self.round_rdp
        epsilon, _ = rdp_privacy_accountant.compute_epsilon(orders, rounds * rdp, self.delta)
        return float(epsilon)

    def describe(self) -> str:
        return (
            f"RDP accountant (dp_accounting), {self.clients_per_round} of {self.num_clients} "
            f"clients a round uniformly without replacement, replace-one adjacency, each order "
            f"capped at the unsampled Gaussian's, noise multiplier {self.noise_multiplier:g}, "
            f"delta {self.delta:.3g}"
        )


@dataclass(frozen=True)
class PoissonAccountant:
    """(epsilon, delta) after r rounds in which each of ``num_clients`` clients takes part with
    probability ``clients_per_round / num_clients``, Gaussian noise ``noise_multiplier`` x clip on
    the clipped sum; add-or-remove adjacency, dp_accounting's PLD accountant."""

    noise_multiplier: float
    clients_per_round: int
    num_clients: int
    delta: float
    adjacency: ClassVar[str] = "add_or_remove"

    @property
    def sampling_probability(self) -> float:
        return self.clients_per_round / self.num_clients

    def round_event(self) -> dp_accounting.DpEvent:
        """One round, for dp_accounting's PLD accountant under add-or-remove adjacency."""
        # add-or-remove moves a clipped sum by the clip: the whole multiplier per unit
        gaussian = dp_accounting.GaussianDpEvent(self.noise_multiplier)
        return dp_accounting.PoissonSampledDpEvent(self.sampling_probability, gaussian)

    @cached_property
    def round_pld(self) -> privacy_loss_distribution.PrivacyLossDistribution:
        """One round's privacy loss distribution, as dp_accounting's PLDAccountant builds it for
        ``round_event`` (half a second, so built once); r rounds are its r-fold composition."""
        return privacy_loss_distribution.from_gaussian_mechanism(
            standard_deviation=self.noise_multiplier,
            value_discretization_interval=PLD_DISCRETIZATION,
            sampling_prob=self.sampling_probability,
        )

    def epsilon(self, rounds: int) -> float:
        """epsilon at ``delta`` after ``rounds`` rounds (inf without noise, 0 before round 1)."""
        if rounds <= 0:
            return 0.0
        if self.noise_multiplier == 0:
            return math.inf
        return float(self.round_pld.self_compose(rounds).get_epsilon_for_delta(self.delta))

    def describe(self) -> str:
        return (
            f"PLD accountant (dp_accounting), each of {self.num_clients} clients a round with "
            f"probability {self.clients_per_round}/{self.num_clients} (Poisson), add-or-remove "
            f"adjacency, noise multiplier {self.noise_multiplier:g}, delta {self.delta:.3g}"
        )


@dataclass(frozen=True)
class NoGuarantee:
    """What a DP aggregator reports when part of it runs without noise: epsilon = inf."""

    delta: float
    reason: str
    adjacency: ClassVar[str] = "none"

    def epsilon(self, rounds: int) -> float:
        return 0.0 if rounds <= 0 else math.inf

    def describe(self) -> str:
        return f"none: epsilon = inf, because {self.reason}"


Accountant = FixedSizeAccountant | PoissonAccountant | NoGuarantee


def privacy_accountant(
    agg: AggregatorConfig, sampler: str, clients_per_round: int, num_clients: int
) -> Accountant:
    """The accountant of a DP aggregator (one that aggregators.AGGREGATORS marks ``private``) under
    ``sampler``; delta is ``aggregator.delta``, or 1 / N^1.1."""
    delta = agg.delta if agg.delta is not None else default_delta(num_clients)
    if agg.zeroing:
        return NoGuarantee(delta, ZEROING_REASON)
    if sampler == "poisson":
        return PoissonAccountant(agg.noise_multiplier, clients_per_round, num_clients, delta)
    return FixedSizeAccountant(agg.noise_multiplier, clients_per_round, num_clients, delta)
