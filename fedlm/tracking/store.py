"""Where runs are recorded: the default SQLite store, a team's tracking server, and the experiment.

With no ``tracking.uri`` every run goes to one SQLite store under the results directory,
``sqlite:///<results>/mlflow.db``, with artifacts in ``<results>/mlartifacts/<experiment>``, so
``uv run mlflow ui --backend-store-uri sqlite:///results/mlflow.db`` shows every run at once.
A ``tracking.uri`` such as ``http://mlflow.example.org:5000`` sends them to a tracking server,
which then decides where artifacts go.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service import utils as tracking_stores

from fedlm import paths
from fedlm.errors import FedlmError
from fedlm.io import folder_lock

# After `import mlflow` (which configures its own loggers): uv's environments have no pip, and
# MLflow warns about it at every log_model.
logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)

# Seconds and retries for the reachability check at start; MLflow's own defaults (7 retries with
# exponential backoff) would leave a mistyped URI hanging for minutes.
PROBE_TIMEOUT_S = 10
SECRET_QUERY_VALUE = re.compile(
    r"([?&][^=&#]*(?:token|pass|secret|key|auth)[^=&#]*=)[^&#]*", re.IGNORECASE
)


class TrackingError(FedlmError):
    """The tracking store cannot be reached or used."""


def default_uri() -> str:
    return f"sqlite:///{paths.results_dir().resolve()}/mlflow.db"


def resolve_uri(uri: str | None) -> str:
    """``tracking.uri``, or the SQLite store under the results directory when it is unset."""
    return default_uri() if uri in (None, "", "none") else str(uri)


def mask_uri(uri: str) -> str:
    """``uri`` with any password, and query values that look like credentials, replaced by ***."""

    def userinfo(match: re.Match) -> str:
        user, has_password, _ = match.group(2).partition(":")
        return f"{match.group(1)}{user}:***@" if has_password else f"{match.group(1)}***@"

    uri = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@", userinfo, uri)
    return SECRET_QUERY_VALUE.sub(r"\1***", uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def _sqlite_store(store_uri: str, artifact_uri: str | None = None):
    """MLflow's SQLite store, whose default artifact root (the ``Default`` experiment's) is
    ``mlartifacts`` beside the database instead of ``./mlruns``, which MLflow would create in
    the working directory of every process that opens the store."""
    if artifact_uri is None:
        db = sqlite_path(store_uri)
        if db is not None:
            artifact_uri = (db.parent.resolve() / "mlartifacts").as_uri()
    return tracking_stores._get_sqlalchemy_store(store_uri, artifact_uri)


# For every MlflowClient of this process (MLflow's store registry, by URI scheme). MLflow caches
# stores by URI, so this holds for stores opened after fedlm.tracking.store is imported.
tracking_stores._register("sqlite", _sqlite_store)


def artifact_location(uri: str, experiment_name: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store, else the server's call.

    MLflow's default for a SQLite store is ``./mlruns`` relative to the working directory, which
    scatters artifacts over every folder a run was started from; an explicit location does not.
    """
    db = sqlite_path(uri)
    if db is None:
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment_name).strip("_") or "experiment"
    return (db.parent.resolve() / "mlartifacts" / folder).as_uri()


@contextlib.contextmanager
def mlflow_environment(**values: str):
    """MLflow settings (read from the environment at each call) changed for a block only."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# Loggers that repeat, in lines of their own, what the tracker reports as one error: urllib3's
# warning at each retry of a tracking server ("Retrying (Retry(total=..."), MLflow's traceback of
# each SQL error before it raises it.
REPEATING_LOGGERS = {"urllib3.connectionpool": logging.ERROR, "mlflow.store.db.utils": 100}


@contextlib.contextmanager
def quiet_repeats():
    """Those loggers silenced for a block (the tracker's calls to the store)."""
    loggers = {logging.getLogger(name): level for name, level in REPEATING_LOGGERS.items()}
    saved = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in saved.items():
            logger.setLevel(level)


def quiet_urls():
    """No "View run at <url>" on stdout from MLflow: it prints the URI's password unmasked."""
    return mlflow_environment(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true")


@contextlib.contextmanager
def _quiet_schema_check():
    """MLflow 3.5 re-runs its table set-up on every open of a SQLite store (idempotent) and
    re-applies alembic's logging file, which prints six INFO lines; INFO is muted meanwhile."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def unwritable_store(db: Path) -> str | None:
    """Why the SQLite database ``db`` cannot be created or written, or None when it can.

    Checked before MLflow opens it: MLflow retries a read-only database for minutes.
    """
    folder = db.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if db.exists():
        if not os.access(db, os.R_OK | os.W_OK):
            return f"{db} cannot be written by this user"
        folder = db.parent  # SQLite writes its journal beside the database
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} cannot be written by this user (SQLite writes beside the database)"
    return None


def _connect(uri: str) -> mlflow.MlflowClient:
    db = sqlite_path(uri)
    try:
        if db is not None:
            problem = unwritable_store(db)
            if problem is not None:
                raise PermissionError(problem)
            db.parent.mkdir(parents=True, exist_ok=True)
        with mlflow_environment(
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(PROBE_TIMEOUT_S)
        ):
            with _quiet_schema_check():
                client = mlflow.MlflowClient(tracking_uri=uri)  # opens (and creates) a SQL store
            client.search_experiments(max_results=1)
    except Exception as error:  # requests, SQLAlchemy, OS and MLflow errors alike
        reason = first_line(error)
        password = urlsplit(uri).password
        if password:
            reason = reason.replace(password, "***")
        raise TrackingError(
            f"tracking.uri={mask_uri(uri)!r} cannot be reached ({type(error).__name__}: "
            f"{reason}): expected a running MLflow tracking server or a writable store; "
            "leave tracking.uri unset for the local SQLite store, or use tracking=none"
        ) from error
    return client


@contextlib.contextmanager
def _store_lock(uri: str):
    """For a SQLite store, a lock on its folder: MLflow creates a new store's tables and its
    Default experiment without one, and two processes doing it at once fail ("duplicate column
    name", "UNIQUE constraint failed")."""
    db = sqlite_path(uri)
    if db is None or unwritable_store(db) is not None:
        yield  # a server, or a store _connect refuses anyway
        return
    with folder_lock(db.parent):
        yield


def connect(uri: str) -> mlflow.MlflowClient:
    """A client of the store at ``uri``, checked to answer (a new SQLite store is created).

    Raises :class:`TrackingError` naming the URI (credentials masked) when it does not answer,
    and at once for a SQLite store this user cannot write.
    """
    with _store_lock(uri):
        return _connect(uri)


def experiment_id(client: mlflow.MlflowClient, uri: str, name: str) -> str:
    """The id of the experiment called ``name``, created (with an artifact location) if new."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(
                f"tracking.experiment_name={name!r} is a deleted experiment in "
                f"{mask_uri(uri)}: expected a live one (restore it in the MLflow UI, or pick "
                "another name)"
            )
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri, name))
    except MlflowException:
        # Another job created it between our look and our create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def prepare_store(uri: str | None, experiment_name: str) -> tuple[mlflow.MlflowClient, str]:
    """Connect (creating a new SQLite store) and make sure the experiment exists.

    Processes that do this at once on a new SQLite store take turns (a lock on its folder).
    """
    uri = resolve_uri(uri)
    with _store_lock(uri):
        client = _connect(uri)
        return client, experiment_id(client, uri, experiment_name)


def ui_command(uri: str) -> str | None:
    """The command that opens the MLflow UI over a local store, from any folder; None for a
    server."""
    db = sqlite_path(uri)
    if db is None:
        return None
    if (paths.PROJECT_ROOT / "pyproject.toml").is_file():  # a checkout: its uv environment
        return f"uv run --project {paths.PROJECT_ROOT} mlflow ui --backend-store-uri {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 300 characters): MLflow's span many."""
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""
