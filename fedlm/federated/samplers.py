"""Which clients take part in each round, and which clients evaluate.

Every sampler draws from the clients that have data under the current preprocessing (the runner
leaves the empty ones out and reports how many), is deterministic for a given seed, and has a
JSON-serialisable ``state`` (its position and its random generator) that a checkpoint stores so
a resumed run samples exactly what an uninterrupted one would have.

- ``fixed``: the same configured client ids every round (the tutorial's two clients).
- ``uniform``: ``clients_per_round`` clients uniformly at random without replacement, each round.
- ``with_replacement``: uniformly at random with replacement (a client may appear twice).
- ``weighted``: without replacement, each client with probability proportional to its size.
- ``round_robin``: through a shuffled list, ``clients_per_round`` at a time, reshuffled each pass.
- ``poisson``: each client independently with probability ``clients_per_round / N``, so the
  cohort's size varies (binomial, mean ``clients_per_round``) and may be empty.

Evaluation clients (:func:`evaluation_clients`) come in two roles that never share a client: test
clients, whose held-out data a study reports, and validation clients, on which hyper-parameters
are chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedlm.config import SamplerConfig, one_of
from fedlm.errors import ConfigError


class Sampler:
    """Base of the samplers: holds the eligible client ids and a seeded generator.

    A sampler is built from the eligible clients (client id -> batches per epoch, all > 0),
    ``clients_per_round`` and the seed; it is named in :data:`SAMPLERS` and conf/sampler/.
    """

    replace = False  # may draw a client twice in a round: clients_per_round may exceed N

    def __init__(
        self, client_ids: Mapping[str, int] | Sequence[str], clients_per_round: int, seed: int
    ):
        self.client_ids = sorted(client_ids)
        self.clients_per_round = clients_per_round
        self.rng = np.random.default_rng(seed)

    def sample(self) -> list[str]:
        raise NotImplementedError

    @property
    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = dict(state["rng"])


class FixedSampler(Sampler):
    def __init__(self, client_ids, clients_per_round, seed):
        super().__init__(client_ids, clients_per_round, seed)
        self.client_ids = list(client_ids)  # the configured order, as the tutorial has it

    def sample(self) -> list[str]:
        return list(self.client_ids)


class UniformSampler(Sampler):
    def sample(self) -> list[str]:
        picks = self.rng.choice(len(self.client_ids), self.clients_per_round, replace=self.replace)
        return [self.client_ids[i] for i in picks]


class WithReplacementSampler(UniformSampler):
    replace = True


class WeightedSampler(Sampler):
    def __init__(self, client_ids: Mapping[str, int], clients_per_round, seed):
        super().__init__(client_ids, clients_per_round, seed)
        weights = np.array([client_ids[c] for c in self.client_ids], dtype=np.float64)
        self.probabilities = weights / weights.sum()

    def sample(self) -> list[str]:
        picks = self.rng.choice(
            len(self.client_ids), self.clients_per_round, replace=False, p=self.probabilities
        )
        return [self.client_ids[i] for i in picks]


class RoundRobinSampler(Sampler):
    def __init__(self, client_ids, clients_per_round, seed):
        super().__init__(client_ids, clients_per_round, seed)
        self.order: list[str] = []
        self.position = 0

    def sample(self) -> list[str]:
        picks = []
        while len(picks) < self.clients_per_round:
            if self.position >= len(self.order):
                shuffled = self.rng.permutation(len(self.client_ids))
                self.order = [self.client_ids[i] for i in shuffled]
                self.position = 0
            picks.append(self.order[self.position])
            self.position += 1
        return picks

    @property
    def state(self) -> dict[str, Any]:
        return {**super().state, "order": list(self.order), "position": self.position}

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        self.order, self.position = list(state["order"]), int(state["position"])


class PoissonSampler(Sampler):
    def __init__(self, client_ids, clients_per_round, seed):
        super().__init__(client_ids, clients_per_round, seed)
        self.probability = clients_per_round / len(self.client_ids)

    def sample(self) -> list[str]:
        # N uniform draws every round: round r's cohort depends on the seed and r alone.
        drawn = self.rng.random(len(self.client_ids)) < self.probability
        return [c for c, taken in zip(self.client_ids, drawn, strict=True) if taken]


# sampler.name -> its class (conf/sampler/<name>.yaml picks one).
SAMPLERS: dict[str, type[Sampler]] = {
    "fixed": FixedSampler,
    "uniform": UniformSampler,
    "with_replacement": WithReplacementSampler,
    "weighted": WeightedSampler,
    "round_robin": RoundRobinSampler,
    "poisson": PoissonSampler,
}


def check_sampler(sampler: SamplerConfig) -> None:
    """``sampler.*`` on its own (the clients it draws from are checked when they are known)."""
    one_of("sampler.name", sampler.name, SAMPLERS)
    if SAMPLERS[sampler.name] is FixedSampler and not sampler.client_ids:
        raise ConfigError("sampler.client_ids", [], "a non-empty list of client ids for 'fixed'")


def resolve_client_ids(specs: Sequence[str], known: Sequence[str], key: str) -> list[str]:
    """Each entry "A|B|..." becomes the first alternative that ``known`` holds.

    One experiment config can so name the same speaker in datasets that file it differently
    (TFF's ``ALL_S_WELL_THAT_ENDS_WELL_CELIA`` and the 1994 build's ``AS_YOU_LIKE_IT_CELIA``).
    """
    known_set = set(known)
    resolved = []
    for spec in specs:
        options = spec.split("|")
        found = next((c for c in options if c in known_set), None)
        if found is None:
            speakers = {o.rsplit("_", 1)[-1] for o in options}
            close = sorted(c for c in known_set if c.rsplit("_", 1)[-1] in speakers)[:5]
            hint = f"; ids with the same speaker: {', '.join(close)}" if close else ""
            raise ConfigError(key, spec, f"a client id of this dataset{hint}")
        resolved.append(found)
    return resolved


def evaluation_clients(
    eligible: Sequence[str],
    max_clients: int | None,
    validation_clients: int = 0,
    test_client_ids: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """The test clients and the validation clients, disjoint, each sorted; fixed draws that do not
    depend on the run's seed, so runs with different seeds are scored on the same clients.

    Test clients: ``test_client_ids`` when given, else ``max_clients`` of ``eligible`` drawn with
    seed 0 (all of them when ``max_clients`` is None or not smaller), so that the test clients do
    not change when validation clients are asked for. Validation clients: ``validation_clients``
    drawn with seed 1 from the eligible clients that are not test clients; when the test clients
    are all of them, the validation clients are drawn first and the test clients are the rest.
    """
    ids = sorted(eligible)
    whole = not test_client_ids and (max_clients is None or max_clients >= len(ids))
    if test_client_ids:
        test = list(test_client_ids)
    elif not whole:
        test = sorted(np.random.default_rng(0).choice(ids, max_clients, replace=False).tolist())
    else:
        test = ids
    if validation_clients <= 0:
        return test, []
    pool = ids if whole else [c for c in ids if c not in set(test)]
    # All test clients: at least one must stay a test client.
    room = len(pool) - 1 if whole else len(pool)
    if validation_clients > room:
        raise ConfigError(
            "eval.validation_clients",
            validation_clients,
            f"at most {room} (evaluation clients with data that are not test clients)",
        )
    drawn = np.random.default_rng(1).choice(pool, validation_clients, replace=False).tolist()
    validation = sorted(drawn)
    if whole:
        test = [c for c in ids if c not in set(validation)]
    return test, validation


def build_sampler(
    name: str,
    eligible: Mapping[str, int],
    clients_per_round: int,
    seed: int,
    fixed_client_ids: Sequence[str] = (),
    all_client_ids: Sequence[str] = (),
) -> Sampler:
    """The sampler ``name`` (checked by :func:`check_sampler`) over ``eligible`` (client id ->
    batches per epoch, all > 0).

    ``all_client_ids`` (every training client, empty ones included) lets a bad fixed id be told
    apart from one that is there but has no data under the current preprocessing.
    """
    sampler = SAMPLERS[name]
    if sampler is FixedSampler:
        known = list(all_client_ids) or list(eligible)
        fixed_client_ids = resolve_client_ids(fixed_client_ids, known, "sampler.client_ids")
        for client_id in fixed_client_ids:
            if client_id not in eligible:
                raise ConfigError(
                    "sampler.client_ids",
                    client_id,
                    "a client with at least one batch under the current seq_len/batch_size "
                    "(try data.pad=true or a smaller training.seq_len)",
                )
        return FixedSampler(fixed_client_ids, len(fixed_client_ids), seed)
    if not sampler.replace and clients_per_round > len(eligible):
        raise ConfigError(
            "training.clients_per_round",
            clients_per_round,
            f"at most {len(eligible)}, the number of clients with data",
        )
    return sampler(eligible, clients_per_round, seed)
