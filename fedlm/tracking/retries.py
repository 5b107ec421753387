"""Calls to the tracking store that give up: MLflow's HTTP retry settings for a time budget
(``tracking.give_up_after_s``), and the decorator that runs a tracker's call under them, so that
a store that stops answering ends the run with one line instead of minutes of retries and a
traceback."""

from __future__ import annotations

import functools

import requests
from mlflow.exceptions import MlflowException

from fedlm.errors import FedlmError
from fedlm.io import is_disk_full
from fedlm.tracking import store

BACKOFF_MAX_S = 120  # urllib3's cap on one wait between retries


def backoff_waits(retries: int, factor: int) -> float:
    """Seconds urllib3 waits in all before ``retries`` retries of one request: 0, then
    ``factor * 2 ** (k - 1)`` before retry k = 2, 3, ..., each at most 120 s."""
    return float(sum(min(BACKOFF_MAX_S, factor * 2 ** (k - 1)) for k in range(2, retries + 1)))


def retry_settings(seconds: float) -> dict[str, str]:
    """MLflow's HTTP settings that give up on a tracking server after about ``seconds`` of
    retries: the number of retries (with back-off factor 2, or 1 under a minute; MLflow takes an
    integer) whose waits come closest to ``seconds``. MLflow's defaults, 7 retries with factor
    2, wait 252 s for each call. Each attempt may also wait for the server up to the request
    timeout (a host that is gone rather than refusing): ``seconds / 6``, at least 10 s.
    """
    factor = 2 if seconds >= 60 else 1
    retries = 1 if seconds > 0 else 0

    def off(n: int) -> float:
        return abs(backoff_waits(n, factor) - seconds)

    while seconds > 0 and off(retries + 1) < off(retries):
        retries += 1
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(factor),
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "1.0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(10, int(seconds / 6))),
    }


def bounded(what: str):
    """Run a tracker method with bounded retries; a store that stops answering ends the run with
    one line (:class:`store.TrackingError`, or :class:`~fedlm.errors.DiskFullError` for a full
    disk: the tracker's ``_unreachable`` and ``_store_full``) instead of minutes of retries and a
    traceback."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):  # self: an MlflowTracker
            try:
                with store.quiet_repeats(), store.mlflow_environment(**self.retries):
                    return method(self, *args, **kwargs)
            except FedlmError:
                raise
            except Exception as error:
                if is_disk_full(error):  # SQLite's error may come unwrapped by MLflow
                    raise self._store_full(what, error) from error
                if isinstance(error, (MlflowException, requests.RequestException)):
                    raise self._unreachable(what, error) from error
                raise

        return wrapper

    return decorate
