"""TFF's private API in one place: any other TFF release, or a changed worker start, is refused
with one line naming the release found and the one expected."""

import pytest

from fedlm import tff_compat
from fedlm.errors import FedlmError


def test_another_tff_release_or_a_changed_worker_start_is_refused_in_one_line():
    tff_compat.check_worker_start(tff_compat.TFF_VERSION, tff_compat.TFF_WORKER_START)
    with pytest.raises(FedlmError) as refused:
        tff_compat.check_worker_start("0.88.0", tff_compat.TFF_WORKER_START)
    assert str(refused.value) == (
        "fedlm patches how TFF 0.87.0 starts its worker_binary (`subprocess.Popen(args, "
        "stdout=stdout, stderr=stderr)` in tensorflow_federated.python.core.impl.executor_stacks."
        "executor_factory), but TFF 0.88.0 is installed and the call is there. Re-check that "
        "module's local_cpp_executor_factory and update fedlm/tff_compat.py (TFF_VERSION), or "
        "install tensorflow-federated==0.87.0."
    )
    with pytest.raises(FedlmError, match="TFF 0.87.0 is installed and the call is missing"):
        tff_compat.check_worker_start(tff_compat.TFF_VERSION, "subprocess.run(args)")


def test_the_shakespeare_preprocessing_of_another_tff_release_or_without_a_name_is_refused():
    tff_compat.check_shakespeare_preprocessing(tff_compat.TFF_VERSION, tff_compat.SHAKESPEARE_NAMES)
    with pytest.raises(FedlmError) as refused:
        tff_compat.check_shakespeare_preprocessing("0.88.0", tff_compat.SHAKESPEARE_NAMES)
    assert str(refused.value) == (
        "fedlm's paper pipeline calls TFF 0.87.0's Shakespeare baseline preprocessing "
        "(tensorflow_federated.python.simulation.baselines.shakespeare."
        "char_prediction_preprocessing: get_special_tokens, CHAR_VOCAB, DEFAULT_SEQUENCE_LENGTH, "
        "DEFAULT_SHUFFLE_BUFFER_SIZE, create_preprocess_fn), but TFF 0.88.0 is installed, with "
        "every name there. Re-check that module against tests/data/test_paper.py and update "
        "fedlm/tff_compat.py (TFF_VERSION), or install tensorflow-federated==0.87.0."
    )
    without = [n for n in tff_compat.SHAKESPEARE_NAMES if n != "create_preprocess_fn"]
    with pytest.raises(FedlmError, match="TFF 0.87.0 is installed, with create_preprocess_fn miss"):
        tff_compat.check_shakespeare_preprocessing(tff_compat.TFF_VERSION, without)


def test_the_installed_tff_has_the_shakespeare_preprocessing_the_paper_pipeline_calls():
    module = tff_compat.shakespeare_preprocessing()
    assert module.__name__ == tff_compat.SHAKESPEARE_PREPROCESSING
    assert module.get_special_tokens() == (0, 87, 88, 89)
