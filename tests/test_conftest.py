"""The suite's own rule (tests/conftest.py): a test that leaves a TFF worker running fails."""

import socket
from pathlib import Path

import tensorflow_federated  # noqa: F401 (imported before pytester: TF cannot be imported twice)

from fedlm.federated import workers

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
PROCESS_REUSE = (Path(__file__).parent / "process_reuse.py").read_text()  # conftest imports it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_test_that_leaves_a_tff_worker_running_fails_and_the_worker_is_ended(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(process_reuse=PROCESS_REUSE)
    pytester.makepyfile(
        test_leaves=f"""
import tensorflow_federated  # noqa: F401 (imported: the conftest patches TFF's worker start)
from fedlm.federated import workers

def test_leaves_a_worker():
    workers.WorkerProcess([str(workers.worker_binary_path()), "--port={free_port()}"])

def test_after_it():
    assert workers.running_workers() == []
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_leaves.py::test_leaves_a_worker left TFF workers running (ended now): "
            "recorded [[]*"
        ]
    )
    assert workers.running_workers() == []


def test_tests_sharing_a_module_fixture_run_on_one_xdist_worker_which_makes_it_once(pytester):
    """Side by side (-n 2), a module-scoped run is made once, on the worker that runs all the tests
    that use it; the other tests go wherever a worker is free."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(process_reuse=PROCESS_REUSE)
    made = pytester.path / "made.txt"
    pytester.makepyfile(
        test_shared=f"""
import os
import pytest

@pytest.fixture(scope="module")
def shared_run():
    with open({str(made)!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")

@pytest.mark.parametrize("i", range(6))
def test_uses_it(shared_run, i):
    pass

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"
    )

    result.assert_outcomes(passed=12)
    assert len(made.read_text().split()) == 1


def test_the_round_loops_process_builds_are_reused_only_for_the_same_arguments():
    import dataclasses

    from process_reuse import reusing

    from fedlm.config import AlgorithmConfig, ModelConfig
    from fedlm.data.pipelines import build_pipeline
    from fedlm.federated.task import Task

    def task(units):
        return Task(build_pipeline("paper", seq_len=4, batch_size=2), ModelConfig(units=units))

    built = []
    build = reusing(lambda model_fn, algorithm, **kw: built.append(model_fn) or object())
    model_fn = task(8).model_fn  # a bound method: described by its task, not its address
    first = build(model_fn, AlgorithmConfig(), clients_per_round=2)
    again = build(task(8).model_fn, AlgorithmConfig(), clients_per_round=2)
    assert again is first and (build.built, build.reused) == (1, 1)
    from_file = Task(task(8).pipeline, ModelConfig(units=8, pretrained="/m.h5"))  # same process
    assert build(from_file.model_fn, AlgorithmConfig(), clients_per_round=2) is first
    for other in (
        (task(9).model_fn, AlgorithmConfig()),  # another model
        (model_fn, dataclasses.replace(AlgorithmConfig(), name="fedprox")),  # another algorithm
    ):
        assert build(*other, clients_per_round=2) is not first
    assert build(model_fn, AlgorithmConfig(), clients_per_round=3) is not first
    assert (build.built, build.reused) == (4, 2) and len(built) == 4

    def closure(units):  # a model function as Task.model_fn makes them: by what it holds
        inner = task(units)
        return lambda: inner.sequence_model()

    assert build(closure(8), AlgorithmConfig()) is build(closure(8), AlgorithmConfig())
    assert build(closure(8), AlgorithmConfig()) is not build(closure(9), AlgorithmConfig())
