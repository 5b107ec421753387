"""MLflow's HTTP retry settings for a time budget, against what urllib3 then sleeps."""

import pytest
from urllib3.util.retry import Retry

from fedlm.tracking.retries import retry_settings


def backoff_seconds(settings) -> float:
    """What urllib3, as MLflow configures it, sleeps over all the retries of one request."""
    retry = Retry(
        total=int(settings["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]),
        backoff_factor=int(settings["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]),
    )
    waited = 0.0
    for _ in range(retry.total):
        retry = retry.increment(method="GET", url="/", error=ConnectionError())
        waited += retry.get_backoff_time()
    return waited


@pytest.mark.parametrize(
    ("seconds", "waited"), [(60, 60), (600, 604), (30, 30), (10, 6), (2, 2), (1, 0), (0, 0)]
)
def test_retries_give_up_after_about_the_configured_time(seconds, waited):
    """MLflow's defaults (7 retries, back-off factor 2) wait 252 s for each call, and a run makes
    several calls before it ends: minutes, then a chain of tracebacks."""
    assert backoff_seconds(retry_settings(seconds)) == waited
