"""epsilon after a run under each of fedlm's privacy accountings, side by side (README, Privacy
accounting). The defaults are the README's: 1200 rounds of 10 of 1,117 clients at noise
multiplier 1.0, delta = 1/1117^1.1 (fedlm's default, 1 / N^1.1).

- fixed-size, replace-one (``sampler=uniform``): dp_accounting's RDP bound for sampling without
  replacement, each order capped at the unsampled Gaussian's (fedlm's FixedSizeAccountant); the
  uncapped bound beside it shows whether the cap binds.
- Poisson, add-or-remove (``sampler=poisson``): dp_accounting's PLD accountant (fedlm's
  PoissonAccountant); dp_accounting's RDP accountant for the same event beside it, for reference.
- for comparison: Poisson rounds at half the noise multiplier (replace-one's noise per unit of
  sensitivity), RDP: what the adjacency alone accounts for.

    uv run python experiments/dp/accounting_table.py [--rounds 1200 --clients-per-round 10
        --num-clients 1117 --noise-multiplier 1.0 --delta D]
"""

from __future__ import annotations

import argparse

import dp_accounting
from dp_accounting.rdp import RdpAccountant

from fedlm.federated.privacy import FixedSizeAccountant, PoissonAccountant, default_delta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1200)
    p.add_argument("--clients-per-round", type=int, default=10)
    p.add_argument("--num-clients", type=int, default=1117)
    p.add_argument("--noise-multiplier", type=float, default=1.0)
    p.add_argument("--delta", type=float, default=None, help="default: 1 / num_clients^1.1")
    args = p.parse_args()
    z, m, n, rounds = args.noise_multiplier, args.clients_per_round, args.num_clients, args.rounds
    delta = args.delta if args.delta is not None else default_delta(n)

    fixed = FixedSizeAccountant(z, m, n, delta)
    uncapped = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    uncapped.compose(dp_accounting.SelfComposedDpEvent(fixed.round_event(), rounds))
    poisson = PoissonAccountant(z, m, n, delta)
    poisson_rdp = RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    )
    poisson_rdp.compose(dp_accounting.SelfComposedDpEvent(poisson.round_event(), rounds))
    # Poisson rounds at replace-one's noise per unit of sensitivity: what the adjacency alone costs
    halved = PoissonAccountant(z / 2, m, n, delta)
    halved_rdp = RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    )
    halved_rdp.compose(dp_accounting.SelfComposedDpEvent(halved.round_event(), rounds))

    print(f"{rounds} rounds, {m} of {n} clients a round, noise multiplier {z:g}, delta {delta:.4g}")
    print("| guarantee | sampler | accountant | epsilon |")
    print("|---|---|---|---:|")
    without = "uniform: fixed size, without replacement"
    each = f"poisson: each client with probability {m}/{n}"
    rows = [
        ("replace-one", without, "RDP, capped (fedlm)", fixed.epsilon(rounds)),
        ("replace-one", without, "RDP, uncapped", uncapped.get_epsilon(delta)),
        ("add-or-remove", each, "PLD (fedlm)", poisson.epsilon(rounds)),
        ("add-or-remove", each, "RDP", poisson_rdp.get_epsilon(delta)),
        ("(comparison) noise multiplier / 2", each, "RDP", halved_rdp.get_epsilon(delta)),
    ]
    for guarantee, sampler, accountant, epsilon in rows:
        print(f"| {guarantee} | {sampler} | {accountant} | {epsilon:.4g} |")


if __name__ == "__main__":
    main()
