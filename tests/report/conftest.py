"""Fixtures of the report tests: one MLflow store for the session, and a sweep logged to it."""

import pytest
from report_runs import ADAM_0, SGD_0, SGD_1, experiment, make_run


@pytest.fixture(scope="session")
def uri(tmp_path_factory):
    """One SQLite store for the session (MLflow's migrations take seconds); one experiment a
    test."""
    folder = tmp_path_factory.mktemp("report_store")
    return f"sqlite:///{folder}/mlflow.db"


@pytest.fixture(scope="session")
def sweep(uri):
    client, eid = experiment(uri, "sweep")

    def job(index, optimizer, seed, accuracy, status="FINISHED", momentum="0.9"):
        name = {"sgdm": "sgd", "adam": "adam"}[optimizer]
        return make_run(
            client,
            eid,
            index,
            overrides={"server_optimizer": optimizer, "seed": seed, "data": "synthetic"},
            params={
                "seed": seed,
                "server_optimizer.name": name,
                "server_optimizer.momentum": momentum if name == "sgd" else "null",
                "server_optimizer.learning_rate": "1.0" if name == "sgd" else "0.1",
                "experiment_scale": "quick",
            },
            accuracy=accuracy,
            status=status,
        )

    ids = {
        "old": job(0, "sgdm", "0", (0.01, 0.9, 0.9, 0.9, 0.9)),
        "sgd0": job(1, "sgdm", "0", SGD_0),
        "sgd1": job(2, "sgdm", "1", SGD_1),
        "adam0": job(3, "adam", "0", ADAM_0),
        "failed": job(4, "adam", "1", (0.01, 0.05), status="FAILED"),
        "running": job(5, "adam", "1", (0.01, 0.07, 0.09)[:2], status="RUNNING"),
    }
    client.create_run(eid, tags={"fedlm.sweep.parent": "true", "override.seed": "0"})
    return ids
