import numpy as np
import pytest

from fedlm.config import SamplerConfig
from fedlm.errors import ConfigError
from fedlm.federated.samplers import build_sampler, check_sampler, evaluation_clients

ELIGIBLE = {f"PLAY_C{i}": i + 1 for i in range(10)}


def draws(sampler, rounds):
    return [sampler.sample() for _ in range(rounds)]


@pytest.mark.parametrize("name", ["uniform", "with_replacement", "weighted", "round_robin"])
def test_same_seed_same_clients_and_different_seed_differs(name):
    a = draws(build_sampler(name, ELIGIBLE, 3, seed=7), 20)
    b = draws(build_sampler(name, ELIGIBLE, 3, seed=7), 20)
    c = draws(build_sampler(name, ELIGIBLE, 3, seed=8), 20)
    assert a == b
    assert a != c
    assert all(len(r) == 3 and set(r) <= set(ELIGIBLE) for r in a)


@pytest.mark.parametrize(
    "name", ["uniform", "with_replacement", "weighted", "round_robin", "poisson"]
)
def test_state_restores_the_sequence(name):
    sampler = build_sampler(name, ELIGIBLE, 4, seed=3)
    draws(sampler, 5)
    saved = sampler.state
    expected = draws(sampler, 5)
    fresh = build_sampler(name, ELIGIBLE, 4, seed=999)
    fresh.load_state(saved)
    assert draws(fresh, 5) == expected


def test_uniform_has_no_repeats_within_a_round():
    for clients in draws(build_sampler("uniform", ELIGIBLE, 10, seed=0), 5):
        assert sorted(clients) == sorted(ELIGIBLE)


def test_with_replacement_can_repeat_and_may_exceed_population():
    rounds = draws(build_sampler("with_replacement", ELIGIBLE, 12, seed=0), 5)
    assert any(len(set(r)) < len(r) for r in rounds)


def test_round_robin_visits_every_client_once_per_pass():
    sampler = build_sampler("round_robin", ELIGIBLE, 5, seed=1)
    first_pass = sampler.sample() + sampler.sample()
    second_pass = sampler.sample() + sampler.sample()
    assert sorted(first_pass) == sorted(ELIGIBLE) == sorted(second_pass)
    assert first_pass != second_pass  # reshuffled between passes


def test_weighted_prefers_large_clients():
    eligible = {"BIG": 1000, "SMALL": 1, "TINY": 1}
    picks = [c for r in draws(build_sampler("weighted", eligible, 1, seed=0), 200) for c in r]
    assert picks.count("BIG") > 190


def test_poisson_takes_each_client_with_probability_clients_per_round_over_n():
    rounds = draws(build_sampler("poisson", ELIGIBLE, 3, seed=7), 2000)
    assert rounds == draws(build_sampler("poisson", ELIGIBLE, 3, seed=7), 2000)
    assert rounds != draws(build_sampler("poisson", ELIGIBLE, 3, seed=8), 2000)
    sizes = [len(r) for r in rounds]
    assert 2.9 < np.mean(sizes) < 3.1  # binomial(10, 0.3): mean 3, stddev 1.45
    assert min(sizes) == 0 and max(sizes) >= 7
    assert 30 < sizes.count(0) < 85  # 2000 x 0.7^10 = 56.5 empty rounds expected
    for client in ELIGIBLE:
        assert 0.27 < sum(client in r for r in rounds) / 2000 < 0.33
    assert all(r == sorted(set(r)) for r in rounds)  # no repeats, in id order


def test_poisson_with_every_client_per_round_takes_all_of_them():
    assert draws(build_sampler("poisson", ELIGIBLE, 10, seed=0), 3) == [sorted(ELIGIBLE)] * 3


def test_poisson_resumes_exactly_across_an_empty_round():
    sampler = build_sampler("poisson", ELIGIBLE, 1, seed=0)
    saved = []
    rounds = []
    for _ in range(30):
        saved.append(sampler.state)
        rounds.append(sampler.sample())
    empty = rounds.index([])
    fresh = build_sampler("poisson", ELIGIBLE, 1, seed=5)
    fresh.load_state(saved[empty])
    assert draws(fresh, 30 - empty) == rounds[empty:]


def test_fixed_returns_the_configured_ids_in_order():
    sampler = build_sampler("fixed", ELIGIBLE, 3, 0, fixed_client_ids=["PLAY_C5", "PLAY_C1"])
    assert draws(sampler, 2) == [["PLAY_C5", "PLAY_C1"]] * 2


def test_fixed_unknown_id_is_refused_with_its_key():
    with pytest.raises(ConfigError, match=r"sampler.client_ids='NOPE' .*client id of this dataset"):
        build_sampler("fixed", ELIGIBLE, 1, 0, fixed_client_ids=["NOPE"])


def test_fixed_empty_client_is_refused():
    with pytest.raises(ConfigError, match="at least one batch"):
        build_sampler(
            "fixed", ELIGIBLE, 1, 0, fixed_client_ids=["EMPTY"], all_client_ids=["EMPTY", *ELIGIBLE]
        )


@pytest.mark.parametrize("name", ["uniform", "poisson"])
def test_too_many_clients_per_round_names_the_limit(name):
    with pytest.raises(ConfigError, match=r"training.clients_per_round=11 .*at most 10"):
        build_sampler(name, ELIGIBLE, 11, 0)


def test_unknown_sampler_lists_the_choices():
    with pytest.raises(ConfigError, match="round_robin"):
        check_sampler(SamplerConfig(name="lottery"))


def test_fixed_needs_its_client_ids():
    check_sampler(SamplerConfig(name="fixed", client_ids=["A"]))
    with pytest.raises(ConfigError) as error:
        check_sampler(SamplerConfig(name="fixed"))
    assert str(error.value) == (
        "sampler.client_ids=[] is not allowed: expected a non-empty list of client ids for 'fixed'"
    )


def test_fixed_alternatives_take_the_first_id_the_data_has():
    eligible = {"AS_YOU_LIKE_IT_CELIA": 3, "OTHELLO_OTHELLO": 2}
    sampler = build_sampler(
        "fixed",
        eligible,
        2,
        0,
        fixed_client_ids=[
            "ALL_S_WELL_THAT_ENDS_WELL_CELIA|AS_YOU_LIKE_IT_CELIA",
            "OTHELLO_OTHELLO",
        ],
    )
    assert sampler.sample() == ["AS_YOU_LIKE_IT_CELIA", "OTHELLO_OTHELLO"]


def test_unknown_fixed_id_suggests_the_same_speaker():
    with pytest.raises(ConfigError, match="same speaker: AS_YOU_LIKE_IT_CELIA"):
        build_sampler("fixed", {"AS_YOU_LIKE_IT_CELIA": 3}, 1, 0, fixed_client_ids=["HAMLET_CELIA"])


CLIENTS = [f"PLAY_C{i:02d}" for i in range(40)]


def test_test_clients_are_the_same_fixed_draw_with_or_without_validation_clients():
    test, validation = evaluation_clients(CLIENTS, 10, 0)
    assert validation == [] and len(test) == 10 and test == sorted(test)
    # the draw that fedlm made before validation clients existed (seed 0, whatever the run's seed)
    expected = sorted(np.random.default_rng(0).choice(CLIENTS, 10, replace=False).tolist())
    assert test == expected
    test_again, validation = evaluation_clients(CLIENTS, 10, 12)
    assert test_again == test
    assert len(validation) == 12 and not set(validation) & set(test)
    assert evaluation_clients(CLIENTS, 10, 12) == (test, validation)  # fixed


def test_validation_clients_are_never_test_clients_in_any_layout():
    # every client a test client: the validation clients are set aside first
    test, validation = evaluation_clients(CLIENTS, None, 5)
    assert len(validation) == 5 and len(test) == 35
    assert sorted(test + validation) == CLIENTS
    # configured test clients: validation drawn from the others
    named = ["PLAY_C03", "PLAY_C01"]
    test, validation = evaluation_clients(CLIENTS, None, 38, named)
    assert test == named and sorted(validation + named) == CLIENTS


def test_too_many_validation_clients_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"eval.validation_clients=31 .* at most 30"):
        evaluation_clients(CLIENTS, 10, 31)
    with pytest.raises(ConfigError, match=r"eval.validation_clients=40 .* at most 39"):
        evaluation_clients(CLIENTS, None, 40)
