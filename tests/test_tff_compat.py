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
