"""Every use of TensorFlow Federated's private API in fedlm, written for TFF 0.87.0.

Two are needed. The first: TFF 0.87's local runtime starts
``tensorflow_federated/data/worker_binary`` with ``subprocess.Popen`` inside its private
executor-factory module and has no public way to stop it (fedlm/federated/workers.py says why
that matters). fedlm therefore

- replaces that module's ``subprocess`` name (:func:`replace_worker_start`), after checking that
  the installed TFF is the release this was written for and still starts its worker with the call
  replaced (:func:`check_worker_start`): any other release fails with one line naming both;
- resets TFF's default context to its private ``RuntimeErrorContext`` at exit
  (:func:`drop_default_context`), only ever after that check has passed.

The second: the papers' Shakespeare pipeline (fedlm/data/paper.py) calls TFF's baseline
preprocessing, whose module ``tff.simulation.baselines.shakespeare`` does not re-export
(:func:`shakespeare_preprocessing`, checked by :func:`check_shakespeare_preprocessing`).

On a TFF upgrade, re-read ``local_cpp_executor_factory`` in :data:`EXECUTOR_FACTORY` and the
``ServiceManager`` there, and :data:`SHAKESPEARE_PREPROCESSING` (tests/data/test_paper.py pins
its batches), then update :data:`TFF_VERSION`. Nothing here imports TensorFlow Federated at
module level.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
from collections.abc import Callable, Iterable
from types import ModuleType

from fedlm.errors import FedlmError

TFF_VERSION = "0.87.0"  # the release whose private worker start the replacement was written for
TFF_WORKER_START = "subprocess.Popen(args, stdout=stdout, stderr=stderr)"  # the call replaced
EXECUTOR_FACTORY = "tensorflow_federated.python.core.impl.executor_stacks.executor_factory"
SHAKESPEARE_PREPROCESSING = (
    "tensorflow_federated.python.simulation.baselines.shakespeare.char_prediction_preprocessing"
)
# What fedlm/data/paper.py reads from it.
SHAKESPEARE_NAMES = (
    "get_special_tokens",
    "CHAR_VOCAB",
    "DEFAULT_SEQUENCE_LENGTH",
    "DEFAULT_SHUFFLE_BUFFER_SIZE",
    "create_preprocess_fn",
)


def check_worker_start(version: str, source: str) -> None:
    """Raise :class:`FedlmError` unless ``source`` is TFF 0.87's worker start that fedlm patches."""
    if version != TFF_VERSION or TFF_WORKER_START not in source:
        found = "the call is missing" if TFF_WORKER_START not in source else "the call is there"
        raise FedlmError(
            f"fedlm patches how TFF {TFF_VERSION} starts its worker_binary (`{TFF_WORKER_START}` "
            f"in {EXECUTOR_FACTORY}), but TFF {version} is installed and {found}. Re-check that "
            "module's local_cpp_executor_factory and update fedlm/tff_compat.py (TFF_VERSION), "
            f"or install tensorflow-federated=={TFF_VERSION}."
        )


class _PopenForTff:
    """``subprocess.Popen`` as TFF's executor-factory module sees it; ``start`` starts processes."""

    def __init__(self, start: Callable[..., subprocess.Popen]):
        self._start = start

    def __call__(self, args, **kwargs) -> subprocess.Popen:
        return self._start(args, **kwargs)

    def __instancecheck__(self, obj: object) -> bool:
        # TFF's ServiceManager.__del__ sends SIGINT to `self._process.pid` if
        # `isinstance(self._process, subprocess.Popen)`, possibly long after fedlm has ended and
        # reaped that worker, when the pid may belong to another process. For TFF, a worker is a
        # Popen only until it has been reaped.
        return isinstance(obj, subprocess.Popen) and obj.returncode is None

    def __getitem__(self, item: object) -> object:  # TFF's annotation `subprocess.Popen[bytes]`
        return subprocess.Popen[item]


class _SubprocessForTff:
    """Stands in for the ``subprocess`` module inside TFF's executor-factory module."""

    def __init__(self, start: Callable[..., subprocess.Popen]):
        self.Popen = _PopenForTff(start)

    def __getattr__(self, name: str) -> object:
        return getattr(subprocess, name)


def replace_worker_start(start: Callable[..., subprocess.Popen]) -> bool:
    """Make TFF's local runtime start its worker with ``start(args, **popen_kwargs)``.

    Replaces the module-level ``subprocess`` name of TFF's private executor-factory module, the
    only caller of ``Popen`` in TFF's local runtime; this applies to every local C++ context, also
    those created before, as long as their worker has not started yet. Returns False when it was
    already replaced (by an earlier call).
    """
    import tensorflow_federated as tff

    try:
        module = importlib.import_module(EXECUTOR_FACTORY)
        source = inspect.getsource(module.local_cpp_executor_factory)
    except (ImportError, AttributeError, OSError):  # moved or renamed: the check names it
        module, source = None, ""
    if module is not None and isinstance(module.subprocess, _SubprocessForTff):
        return False
    check_worker_start(tff.__version__, source)
    if module.subprocess is not subprocess:
        raise FedlmError(
            f"{EXECUTOR_FACTORY}.subprocess was already replaced by {module.subprocess!r}"
        )
    module.subprocess = _SubprocessForTff(start)
    return True


def drop_default_context() -> None:
    """Replace the context TFF installs at import by TFF's own error context, while Python still
    works: deleted during interpreter teardown, its ServiceManager.__del__ fails with "Exception
    ignored in ..."."""
    import tensorflow_federated as tff
    from tensorflow_federated.python.core.impl.context_stack import runtime_error_context

    tff.framework.get_context_stack().set_default_context(
        runtime_error_context.RuntimeErrorContext()
    )


def check_shakespeare_preprocessing(version: str, found: Iterable[str]) -> None:
    """Raise :class:`FedlmError` unless TFF ``version`` is the release fedlm's paper pipeline was
    written for and its preprocessing module has every name of :data:`SHAKESPEARE_NAMES`
    (``found``: the names it has)."""
    found = set(found)
    missing = [name for name in SHAKESPEARE_NAMES if name not in found]
    if version != TFF_VERSION or missing:
        found_line = f"{', '.join(missing)} missing" if missing else "every name there"
        raise FedlmError(
            f"fedlm's paper pipeline calls TFF {TFF_VERSION}'s Shakespeare baseline preprocessing "
            f"({SHAKESPEARE_PREPROCESSING}: {', '.join(SHAKESPEARE_NAMES)}), but TFF {version} "
            f"is installed, with {found_line}. Re-check that module against "
            "tests/data/test_paper.py and update fedlm/tff_compat.py (TFF_VERSION), or install "
            f"tensorflow-federated=={TFF_VERSION}."
        )


def shakespeare_preprocessing() -> ModuleType:
    """TFF's Shakespeare baseline preprocessing module (its tokens, vocabulary, defaults and
    ``create_preprocess_fn``), after :func:`check_shakespeare_preprocessing`."""
    import tensorflow_federated as tff

    try:
        module = importlib.import_module(SHAKESPEARE_PREPROCESSING)
    except ImportError:  # moved or renamed: the check names what is missing
        module = None
    check_shakespeare_preprocessing(tff.__version__, dir(module) if module is not None else ())
    return module
