"""fedlm's privacy accounting against dp_accounting's public API and closed forms."""

import math

import dp_accounting
import pytest
from dp_accounting.pld import PLDAccountant
from dp_accounting.rdp import RdpAccountant
from scipy import optimize, stats

from fedlm.config import AggregatorConfig
from fedlm.federated.aggregators import AggregatorMetrics
from fedlm.federated.privacy import (
    FixedSizeAccountant,
    NoGuarantee,
    PoissonAccountant,
    privacy_accountant,
)


def uncapped_epsilon(noise_multiplier, clients_per_round, num_clients, rounds, delta):
    """dp_accounting's bound for sampling without replacement, written out with its public API."""
    accountant = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    sampled = dp_accounting.SampledWithoutReplacementDpEvent(
        num_clients, clients_per_round, dp_accounting.GaussianDpEvent(noise_multiplier / 2)
    )
    accountant.compose(dp_accounting.SelfComposedDpEvent(sampled, rounds))
    return accountant.get_epsilon(delta)


def unsampled_epsilon(noise_multiplier, rounds, delta):
    """Every client every round: the Gaussian mechanism, replace-one (sensitivity 2 x clip)."""
    accountant = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier / 2)
    accountant.compose(dp_accounting.SelfComposedDpEvent(gaussian, rounds))
    return accountant.get_epsilon(delta)


def poisson_epsilon(noise_multiplier, probability, rounds, delta):
    """dp_accounting's PLD accountant, add-or-remove, through its public API."""
    accountant = PLDAccountant(dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE)
    event = dp_accounting.PoissonSampledDpEvent(
        probability, dp_accounting.GaussianDpEvent(noise_multiplier)
    )
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return accountant.get_epsilon(delta)


def analytic_gaussian_epsilon(noise_multiplier, delta):
    """The exact epsilon of the Gaussian mechanism of sensitivity 1 (Balle and Wang 2018,
    Theorem 8): delta(eps) = Phi(1/(2s) - eps s) - e^eps Phi(-1/(2s) - eps s)."""
    s = noise_multiplier

    def excess(eps):
        phi = stats.norm.cdf
        return phi(1 / (2 * s) - eps * s) - math.exp(eps) * phi(-1 / (2 * s) - eps * s) - delta

    return optimize.brentq(excess, 0.0, 50.0, xtol=1e-12)


# -- fixed-size sampling, replace-one, RDP --------------------------------------------------------


def test_one_round_of_all_clients_is_dp_accountings_own_gaussian_example():
    """dp_accounting's test_compute_epsilon_delta_gaussian: a Gaussian mechanism with noise
    multiplier 4.530877117 (per unit of sensitivity) is exactly (1, 1e-6)-DP. All clients in one
    round is that mechanism; under replace-one a clipped sum's sensitivity is 2 x clip, so
    fedlm's noise multiplier (per clip) is twice that number."""
    accountant = FixedSizeAccountant(
        noise_multiplier=2 * 4.530877117, clients_per_round=5, num_clients=5, delta=1e-6
    )
    assert accountant.epsilon(1) == pytest.approx(1.0, abs=1e-5)
    # Half the noise per clip would have been the add-or-remove reading: a much smaller epsilon.
    halved = FixedSizeAccountant(4.530877117, 5, 5, 1e-6)
    assert halved.epsilon(1) > 2.0


def test_two_of_three_clients_is_no_worse_than_all_three():
    """Issue 23: dp_accounting's bound for sampling 2 of 3 gives 15.6, 31.5, 47.4 after rounds
    1-3 (noise 0.5, delta 1/3), more than the 11.7, 22.0, 31.6 of taking all 3 clients. Capped
    at the unsampled Gaussian's RDP, 2 of 3 reports at most what 3 of 3 does."""
    uncapped = [uncapped_epsilon(0.5, 2, 3, r, 1 / 3) for r in (1, 2, 3)]
    assert uncapped == pytest.approx([15.5945, 31.4768, 47.3590], abs=1e-4)
    every_client = [unsampled_epsilon(0.5, r, 1 / 3) for r in (1, 2, 3)]
    assert every_client == pytest.approx([11.7212, 21.9897, 31.5897], abs=1e-4)
    all_three = FixedSizeAccountant(0.5, 3, 3, 1 / 3)
    two_of_three = FixedSizeAccountant(0.5, 2, 3, 1 / 3)
    for rounds, expected in zip((1, 2, 3), every_client, strict=True):
        assert all_three.epsilon(rounds) == pytest.approx(expected, rel=1e-12)
        assert two_of_three.epsilon(rounds) <= all_three.epsilon(rounds)
        assert two_of_three.epsilon(rounds) == pytest.approx(expected, rel=1e-12)


def test_where_the_cap_does_not_bind_every_round_is_dp_accountings_bound():
    accountant = FixedSizeAccountant(0.7, clients_per_round=10, num_clients=600, delta=1 / 600)
    epsilons = [accountant.epsilon(r) for r in (1, 2, 3, 50)]
    for rounds, epsilon in zip((1, 2, 3, 50), epsilons, strict=True):
        assert epsilon == pytest.approx(uncapped_epsilon(0.7, 10, 600, rounds, 1 / 600), rel=1e-9)
    assert epsilons == sorted(epsilons) and epsilons[0] > 0


def test_epsilon_is_a_function_of_the_round_alone_so_resume_continues_it():
    """A resumed run makes a fresh accountant: its round 7 must be the uninterrupted run's."""
    for make in (FixedSizeAccountant, PoissonAccountant):
        uninterrupted = make(1.0, 3, 40, 0.025)
        seen = [uninterrupted.epsilon(r) for r in range(1, 8)]
        resumed = make(1.0, 3, 40, 0.025)
        assert resumed.epsilon(7) == seen[-1]
        assert resumed.epsilon(0) == 0.0
        assert seen == sorted(seen)


# -- Poisson sampling, add-or-remove, PLD ---------------------------------------------------------


def test_poisson_every_round_equals_dp_accountings_pld_accountant():
    accountant = PoissonAccountant(0.7, clients_per_round=10, num_clients=600, delta=1e-4)
    assert accountant.sampling_probability == 10 / 600
    for rounds in (1, 2, 3, 50):
        expected = poisson_epsilon(0.7, 10 / 600, rounds, 1e-4)
        assert accountant.epsilon(rounds) == pytest.approx(expected, rel=1e-9)


def test_poisson_with_every_client_is_the_exact_gaussian_mechanism_add_or_remove():
    """Probability 1 is the Gaussian mechanism; under add-or-remove the clipped sum moves by the
    clip, so the whole multiplier counts. The PLD accountant is tight: at 4.530877117 (RDP's
    (1, 1e-6) above) it gives the analytic Gaussian's 0.927, from above and within its grid."""
    exact = analytic_gaussian_epsilon(4.530877117, 1e-6)
    assert exact == pytest.approx(0.9274, abs=1e-4)
    epsilon = PoissonAccountant(4.530877117, 5, 5, 1e-6).epsilon(1)
    assert exact - 1e-9 <= epsilon <= exact + 1e-3


def test_the_readme_figures_1200_rounds_of_10_of_1117_at_noise_1():
    """README, Privacy accounting (experiments/dp/accounting_table.py): delta 1/1117^1.1."""
    delta = 1117**-1.1
    assert FixedSizeAccountant(1.0, 10, 1117, delta).epsilon(1200) == pytest.approx(
        16.79, abs=0.005
    )
    assert PoissonAccountant(1.0, 10, 1117, delta).epsilon(1200) == pytest.approx(1.254, abs=5e-4)


# -- which accountant, and delta --------------------------------------------------------------


def test_the_sampler_chooses_the_accounting_and_delta_defaults_to_one_over_n_to_the_1_1():
    dp = AggregatorConfig(name="dp_fixed", noise_multiplier=1.0, clip=1.0)
    fixed = privacy_accountant(dp, "uniform", 3, 8)
    poisson = privacy_accountant(dp, "poisson", 3, 8)
    assert fixed == FixedSizeAccountant(1.0, 3, 8, 8**-1.1)
    assert poisson == PoissonAccountant(1.0, 3, 8, 8**-1.1)
    assert (fixed.adjacency, poisson.adjacency) == ("replace_one", "add_or_remove")
    given = AggregatorConfig(name="dp_fixed", noise_multiplier=1.0, clip=1.0, delta=1e-5)
    assert privacy_accountant(given, "poisson", 3, 8).delta == 1e-5
    assert (
        AggregatorMetrics(AggregatorConfig(name="robust"), 3, 8, sampler="poisson").accountant
        is None
    )


def test_no_noise_is_no_privacy_under_either_sampler():
    agg = AggregatorConfig(name="dp_fixed", noise_multiplier=0.0, clip=1.0)
    for sampler in ("uniform", "poisson"):
        metrics = AggregatorMetrics(agg, 3, 8, sampler=sampler)
        assert metrics.round_metrics({}, 1, 3) == {
            "privacy/epsilon": math.inf,
            "privacy/delta": 8**-1.1,
        }


def test_zeroing_has_no_finite_epsilon_and_says_why():
    agg = AggregatorConfig(name="dp_adaptive", noise_multiplier=0.1, zeroing=True)
    metrics = AggregatorMetrics(agg, 3, 8)
    assert isinstance(metrics.accountant, NoGuarantee)
    assert metrics.round_metrics({}, 1, 3)["privacy/epsilon"] == math.inf
    tags = metrics.tags(2)
    assert tags["fedlm.privacy.epsilon"] == "inf"
    assert tags["fedlm.privacy.adjacency"] == "none"
    assert tags["fedlm.privacy.accounting"] == (
        "none: epsilon = inf, because aggregator.zeroing=true estimates the zeroing threshold "
        "from the clients' update norms without noise, so no finite epsilon holds"
    )
