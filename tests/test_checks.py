"""validate: each config group's names and checks come from its own module (data sources from
fedlm/data/clients.py, runtimes from fedlm/federated/runtime.py); a bad value is one line naming
the key, the value and what is allowed."""

import pytest

from fedlm.checks import check_data, validate
from fedlm.config import DataConfig, RuntimeConfig, TrainConfig
from fedlm.errors import ConfigError


def synthetic(**runtime) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(name="synthetic", cache_dir=""), runtime=RuntimeConfig(**runtime)
    )


def test_a_config_of_the_shipped_names_passes():
    validate(synthetic())
    validate(synthetic(name="remote", workers=["node1:8000"]))
    check_data(synthetic())  # held in memory by TFF: nothing to check before the run


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            TrainConfig(data=DataConfig(name="emnist")),
            "data.name='emnist' is not allowed: expected one of 'shakespeare', 'synthetic'",
        ),
        (
            synthetic(name="cloud"),
            "runtime.name='cloud' is not allowed: expected one of 'local', 'remote'",
        ),
        (
            synthetic(name="remote"),
            "runtime.workers=[] is not allowed: expected a non-empty list of host:port for "
            "'remote'",
        ),
        (
            synthetic(local_workers=0),
            "runtime.local_workers=0 is not allowed: expected 'auto' or an integer >= 1",
        ),
        (  # e.g. +experiment=mcmahan2017 runtime=remote: the study caps its local worker
            synthetic(name="remote", workers=["node1:8000"], max_concurrent_computation_calls=2),
            "runtime.max_concurrent_computation_calls=2 is not allowed: expected -1 with runtime "
            "'remote' (set the cap on each worker: fedlm-worker --max-concurrent-computation-calls "
            "N)",
        ),
    ],
)
def test_a_bad_data_source_or_runtime_is_one_line(cfg, message):
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    assert str(refused.value) == message
