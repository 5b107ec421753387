"""Writing federated Shakespeare in TFF's own SQLite format.

``DIR/shakespeare.sqlite`` is the file that ``tff.simulation.datasets.shakespeare.load_data``
downloads and caches, so ``load_data(cache_dir=DIR)`` reads a build unchanged and offline.
TFF's ``save_to_sql_client_data`` gives each client id one split, while every Shakespeare client
is in both ``train`` and ``test``: it is called once per split, into scratch files, whose
``examples`` and ``client_metadata`` rows are then combined into one database. All of it happens
in temporary files beside the target, renamed into place at the end, so a failed or interrupted
build leaves no partial database and never replaces a good one. A build holds a lock on the cache
dir: parallel jobs on a new cache dir build the database once, and the temporary files that a
killed build left behind are removed by the next one.

Every build is stamped: a ``fedlm_build`` table (key, value) beside TFF's two records the parser
version (:data:`~fedlm.data.shakespeare_text.PARSER_VERSION`), the source and its SHA-256, the
split settings and fedlm's version. TFF reads only its own tables, so a stamped database is still
TFF's format. :func:`stale_reason` says when a database must not be used as this fedlm's build: its
stamp names an older parser, or it has none while its clients are all characters of the plays of
the source fedlm builds from (a build made before the stamp existed). A database without a stamp
whose clients are not those (TFF's own download) is not fedlm's to judge.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import fedlm
from fedlm.data.shakespeare_text import (
    PARSER_VERSION,
    ShakespeareClients,
    client_id,
    read_complete_works,
    read_play_titles,
)
from fedlm.errors import DataError
from fedlm.io import atomic_path, folder_lock

DATABASE_NAME = "shakespeare.sqlite"  # the name load_data looks for in its cache_dir
STAMP_TABLE = "fedlm_build"


def no_autotune():
    """tf.data options without autotuning: save_to_sql_client_data iterates one small dataset
    per client, and autotuning makes each iterator cost ~17 ms, six times the whole iteration."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def database_path(cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir).expanduser() / DATABASE_NAME


def check_cache_dir(cache_dir: str | os.PathLike, key: str = "data.cache_dir") -> Path:
    """``cache_dir`` as a path; :class:`DataError` naming ``key`` if it exists and is no folder."""
    folder = Path(cache_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        hint = (
            f"; set {key}={str(folder.parent)!r}, the folder that holds it"
            if folder.name == DATABASE_NAME
            else ""
        )
        raise DataError(
            f"{key}={str(cache_dir)!r} is a file: expected the folder that holds (or will hold) "
            f"{DATABASE_NAME}{hint}"
        )
    return folder


def remove_leftovers(target: Path) -> list[Path]:
    """Remove the temporary files and scratch folders of earlier builds of ``target`` that were
    killed before they could clean up; return what was removed. Call it holding the build lock."""
    removed = []
    for path in target.parent.glob(f".{target.name}.*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.suffix == ".tmp":
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path)
    return removed


def _combine(parts: Sequence[Path], database: Path, stamp: Mapping[str, str]) -> None:
    """Copy the tables of the first part, then every part's rows in order, into ``database``,
    and ``stamp`` into its own table."""
    with contextlib.closing(sqlite3.connect(database)) as con:
        if stamp:
            con.execute(f"CREATE TABLE {STAMP_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.executemany(f"INSERT INTO {STAMP_TABLE} VALUES (?, ?)", sorted(stamp.items()))
        for i, part in enumerate(parts):
            con.execute("ATTACH DATABASE ? AS part", (str(part),))
            if i == 0:
                tables = con.execute("SELECT sql FROM part.sqlite_master WHERE type = 'table'")
                for (create_table,) in tables.fetchall():
                    con.execute(create_table)
            for table in ("examples", "client_metadata"):
                con.execute(f"INSERT INTO {table} SELECT * FROM part.{table} ORDER BY rowid")
            con.commit()
            con.execute("DETACH DATABASE part")


def write_sql_client_data(
    splits: Mapping[str, Mapping[str, Sequence[str]]],
    target: str | os.PathLike,
    log: Callable[[str], None] = print,
    stamp: Mapping[str, str] | None = None,
) -> None:
    """Write ``{split: {client_id: snippets}}`` to the SQLite file ``target`` (element
    ``{'snippets': tf.string}``), with ``stamp`` in the ``fedlm_build`` table if given,
    atomically; an existing ``target`` is replaced only on success.
    """
    import tensorflow as tf  # here only: importing TensorFlow and TFF costs seconds
    import tensorflow_federated as tff

    options = no_autotune()
    target = Path(target)
    with (
        atomic_path(target) as tmp,
        tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as scratch,
    ):
        parts = []
        for split, clients in splits.items():
            log(f"writing split {split!r}: {len(clients)} clients")
            part = Path(scratch) / f"{split}.sqlite"

            def dataset_fn(cid, clients=clients):
                snippets = tf.constant(list(clients[cid]), dtype=tf.string)
                return tf.data.Dataset.from_tensor_slices({"snippets": snippets}).with_options(
                    options
                )

            tff.simulation.datasets.save_to_sql_client_data(
                client_ids=list(clients),
                dataset_fn=dataset_fn,
                database_filepath=str(part),
                split_names_by_client_id={cid: split for cid in clients},
            )
            parts.append(part)
        _combine(parts, tmp, stamp or {})
        tmp.chmod(0o644)  # as TFF's own download; the temporary file was private (0600)


def build_shakespeare(
    source: str | os.PathLike,
    cache_dir: str | os.PathLike,
    force: bool = False,
    test_fraction: float = 0.2,
    min_examples: int = 2,
    log: Callable[[str], None] = print,
    skip_existing: bool = False,
) -> ShakespeareClients | None:
    """Parse the complete works at ``source`` and write ``cache_dir/shakespeare.sqlite``.

    Refuses to replace an existing database unless ``force``; with ``skip_existing`` an existing
    one (perhaps built by another process meanwhile) is kept and None returned. Returns the parsed
    clients.
    """
    target = database_path(check_cache_dir(cache_dir))
    if target.exists() and not force:
        if skip_existing:
            return None
        raise DataError(
            f"{target} already exists ({describe_build(target)}): expected force=True (--force) "
            "to rebuild it"
        )
    clients = read_complete_works(source, test_fraction, min_examples)  # before any folder is made
    stamp = {
        "parser_version": str(PARSER_VERSION),
        "source": str(Path(source).expanduser().resolve()),
        "source_sha256": hashlib.sha256(Path(source).expanduser().read_bytes()).hexdigest(),
        "test_fraction": repr(test_fraction),
        "min_examples": str(min_examples),
        "fedlm_version": fedlm.__version__,
    }
    with folder_lock(target.parent):
        for path in remove_leftovers(target):
            log(f"removed {path}, left by an interrupted build")
        if target.exists() and not force:  # built by another process meanwhile
            if skip_existing:
                return None
            raise DataError(f"{target} already exists: expected force=True (--force) to rebuild it")
        write_sql_client_data(
            {"train": clients.train, "test": clients.test}, target, log=log, stamp=stamp
        )
    return clients


def _read_only(database: str | os.PathLike) -> contextlib.closing[sqlite3.Connection]:
    uri = f"{Path(database).resolve().as_uri()}?mode=ro"  # never creates or changes the file
    return contextlib.closing(sqlite3.connect(uri, uri=True))


def read_stamp(database: str | os.PathLike) -> dict[str, str] | None:
    """The build stamp of ``database`` (key -> value); None if it has none, or is no SQLite
    database at all (reading it as TFF's then says what is wrong)."""
    try:
        with _read_only(database) as con:
            return dict(con.execute(f"SELECT key, value FROM {STAMP_TABLE}").fetchall())
    except sqlite3.DatabaseError:  # no such table, or not a database
        return None


def describe_build(database: str | os.PathLike) -> str:
    """One phrase on who built ``database``: fedlm's parser version and source, or no stamp."""
    stamp = read_stamp(database)
    if stamp is None:
        return "no fedlm build stamp"
    version = stamp.get("parser_version", "?")
    return f"built by fedlm's parser version {version} from {stamp.get('source', '?')}"


def _all_clients_from(database: Path, titles: Sequence[str]) -> bool:
    """Whether every client id of ``database`` is a character of one of the plays ``titles``."""
    prefixes = tuple(client_id(title, "") + "_" for title in titles)
    try:
        with _read_only(database) as con:
            ids = con.execute("SELECT DISTINCT client_id FROM client_metadata").fetchall()
    except sqlite3.DatabaseError:
        return False
    return bool(ids) and all(cid.startswith(prefixes) for (cid,) in ids)


def build_difference(
    database: str | os.PathLike,
    source: str | os.PathLike,
    test_fraction: float = 0.2,
    min_examples: int = 2,
) -> str | None:
    """How ``database`` differs from what building ``source`` with these options would give now
    (a phrase: "was built by ..."), or None when it is that build (its stamp says so)."""
    stamp = read_stamp(database)
    if stamp is None:
        return "has no fedlm build stamp"
    if stamp.get("parser_version") != str(PARSER_VERSION):
        return f"was built by fedlm's parser version {stamp.get('parser_version')}"
    source = Path(source).expanduser()
    text_sha256 = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None
    if text_sha256 is not None and stamp.get("source_sha256") != text_sha256:
        return f"was built from another text ({stamp.get('source')})"
    if stamp.get("test_fraction") != repr(test_fraction):
        return f"was built with test fraction {stamp.get('test_fraction')}"
    if stamp.get("min_examples") != str(min_examples):
        return f"was built with at least {stamp.get('min_examples')} examples a client"
    return None


def stale_reason(database: str | os.PathLike, source: str | os.PathLike | None) -> str | None:
    """Why ``database`` is not this fedlm's build of ``source`` (a phrase: "was built by ..."),
    or None if it is, or if it is not fedlm's to judge (no stamp, and clients that are not all
    characters of ``source``'s plays, as in TFF's download; or no ``source`` file to compare)."""
    database = Path(database)
    stamp = read_stamp(database)
    if stamp is not None:
        version = stamp.get("parser_version")
        if version == str(PARSER_VERSION):
            return None
        return f"was built by fedlm's parser version {version}"
    source = Path(source).expanduser() if source is not None else None
    if source is None or not source.is_file():
        return None
    if _all_clients_from(database, read_play_titles(source)):
        return "was built by fedlm's parser version 1 (it has no build stamp)"
    return None
