"""Which federated dataset a run gets, and every client's snippets as plain strings.

:func:`load_snippets` is the one call a run makes: every client's snippets of both splits, each
source read once. For federated Shakespeare, :func:`shakespeare_database` first makes sure that
``cache_dir/shakespeare.sqlite`` is there and this fedlm's build (built from ``source``, or
downloaded by TFF, when it is not there yet; rebuilt by :func:`rebuild_if_stale` when an older
fedlm built it), and :func:`read_snippets` then reads it with sqlite3 and
:mod:`fedlm.data.tf_example` instead of TensorFlow: about a second for the full dataset, which
lets ``fedlm-train`` size every client before it imports TensorFlow. TFF's synthetic
Shakespeare is read through tf.data (:func:`client_data_snippets`).

:func:`load_client_data` gives the same data as TFF's (train, test) ``ClientData``, for code
that wants TFF's view (the tutorial's own loop in ``experiments/seed_tutorial``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedlm import paths
from fedlm.config import DataConfig, one_of
from fedlm.data.build import (
    DATABASE_NAME,
    build_shakespeare,
    check_cache_dir,
    database_path,
    no_autotune,
    read_stamp,
    stale_reason,
)
from fedlm.data.fetch import SHAKESPEARE, at_hand, complete_works_path
from fedlm.data.shakespeare_text import PARSER_VERSION
from fedlm.data.tf_example import snippet
from fedlm.errors import ConfigError, DataError

if TYPE_CHECKING:
    import tensorflow_federated as tff

    ClientData = tff.simulation.datasets.ClientData  # TFF's public name

SPLITS = ("train", "test")
Say = Callable[[str], None]


def default_source() -> Path:
    """The 1994 Gutenberg text of the complete works: in the shared data directory, else fedlm's
    fetched copy where that is there (``fedlm-data fetch``), else the shared path."""
    shared = paths.shared_data_dir() / SHAKESPEARE.relative
    return at_hand(shared, SHAKESPEARE.relative) or shared


def default_cache_dir() -> Path:
    return paths.cache_dir() / "shakespeare"


@dataclass(frozen=True)
class ClientSnippets:
    """Every client's snippets of each split: client id -> its snippets, in the order TFF's
    ``ClientData`` yields them."""

    train: dict[str, list[str]]
    test: dict[str, list[str]]


def load_snippets(data: DataConfig, say: Say = print) -> ClientSnippets:
    """Every client's snippets of both splits of the dataset ``data.name`` (:data:`DATASETS`),
    each source read once. Raises :class:`ConfigError` for an unknown name and
    :class:`DataError` as :func:`shakespeare_database` and :func:`read_snippets` do."""
    return data_source(data.name).snippets(data, say)


def _shakespeare_snippets(data: DataConfig, say: Say) -> ClientSnippets:
    database = shakespeare_database(data.cache_dir, data.source, data.source_url, say)
    folder = database.parent
    return ClientSnippets(read_snippets(folder, "train"), read_snippets(folder, "test"))


def _synthetic_snippets(data: DataConfig, say: Say) -> ClientSnippets:
    import tensorflow_federated as tff  # here only: importing TFF costs seconds

    train = client_data_snippets(tff.simulation.datasets.shakespeare.get_synthetic())
    return ClientSnippets(train, {cid: list(s) for cid, s in train.items()})  # both splits


def shakespeare_database(
    cache_dir: str | os.PathLike,
    source: str | os.PathLike | None = None,
    source_url: str | None = None,
    say: Say = print,
) -> Path:
    """``cache_dir/shakespeare.sqlite``, ready to read: one that exists, rebuilt from ``source``
    first if an older fedlm built it (:func:`rebuild_if_stale`); else built there from
    ``source`` if given; else TFF's download into ``cache_dir``. A ``source`` that is not there
    is fedlm's fetched copy, fetched from ``source_url`` first if need be
    (:mod:`fedlm.data.fetch`). Raises :class:`DataError` for a missing source, a stale build
    that cannot be rebuilt or a failed download."""
    cache_dir = check_cache_dir(cache_dir)
    database = database_path(cache_dir)
    if database.exists():
        rebuild_if_stale(database, source, source_url, say)
    elif source is not None:
        source = complete_works_path(source, source_url)
        say(f"Building federated Shakespeare from {source} into {database}")
        build_shakespeare(source, cache_dir, skip_existing=True, log=say)
    else:
        _download(database)
    return database


def rebuild_if_stale(
    database: Path,
    source: str | os.PathLike | None,
    source_url: str | None = None,
    say: Say = print,
) -> None:
    """Rebuild ``database`` from ``source`` (fetched from ``source_url`` if it is not at hand),
    with one line saying why, when an older fedlm built it
    (:func:`~fedlm.data.build.stale_reason`); :class:`DataError` when it is stale and there is
    no source to rebuild it from. A current build, or one fedlm did not make, is left as it is."""
    found = at_hand(source, SHAKESPEARE.relative) if source is not None else None
    reason = stale_reason(database, found)
    if reason is None:
        return
    if found is None and source is not None and source_url is not None:
        found = complete_works_path(source, source_url)
    if found is None:
        raise DataError(
            f"{database} {reason}, and this fedlm's is version {PARSER_VERSION}: its clients "
            f"differ. Rebuild it: `uv run fedlm-data build --source {default_source()} "
            f"--cache-dir {database.parent} --force` (or set data.source to the Gutenberg text "
            "and it is rebuilt on load)"
        )
    say(
        f"Rebuilding {database} from {found}: it {reason}, this fedlm's is version {PARSER_VERSION}"
    )
    build_shakespeare(found, database.parent, force=True, log=lambda _: None)


def _download(database: Path) -> None:
    """TFF's download of federated Shakespeare into ``database``'s folder (its ``load_data``,
    whose ``ClientData`` is not needed: the file it leaves is what is read)."""
    import tensorflow_federated as tff

    cache_dir = database.parent
    try:
        tff.simulation.datasets.shakespeare.load_data(cache_dir=str(cache_dir))
    except Exception as e:
        # A download cut off half way leaves a file that load_data would take for the dataset.
        database.unlink(missing_ok=True)
        raise DataError(
            f"data.cache_dir={str(cache_dir)!r} has no {DATABASE_NAME} and TFF could not "
            f"download it ({type(e).__name__}: {e}). Either build it from the Gutenberg text: "
            f"`uv run fedlm-data build --source {default_source()} --cache-dir {cache_dir}` "
            f"(or set data.source to that file), or set data.cache_dir to a directory that has "
            f"{DATABASE_NAME}."
        ) from e


def load_client_data(
    name: str,
    cache_dir: str | os.PathLike,
    source: str | os.PathLike | None = None,
    source_url: str | None = None,
    say: Say = print,
) -> tuple[ClientData, ClientData]:
    """(train, test) ``ClientData`` of the dataset ``name``: TFF's synthetic Shakespeare for
    both, or TFF's reading of the database :func:`shakespeare_database` makes ready. Raises
    :class:`ConfigError` for an unknown name and :class:`DataError` as that function does, or
    for a database TFF cannot read."""
    return data_source(name).client_data(cache_dir, source, source_url, say)


def _shakespeare_client_data(cache_dir, source, source_url, say) -> tuple[ClientData, ClientData]:
    import tensorflow_federated as tff

    database = shakespeare_database(cache_dir, source, source_url, say)
    try:
        return tff.simulation.datasets.shakespeare.load_data(cache_dir=str(database.parent))
    except Exception as e:
        raise DataError(
            f"{database} cannot be read as federated Shakespeare ({type(e).__name__}: {e}): "
            "expected TFF's SQLite format; rebuild it with `fedlm-data build --force`"
        ) from e


def _synthetic_client_data(cache_dir, source, source_url, say) -> tuple[ClientData, ClientData]:
    import tensorflow_federated as tff

    synthetic = tff.simulation.datasets.shakespeare.get_synthetic()
    return synthetic, synthetic


@dataclass(frozen=True)
class DataSource:
    """A ``data.name``: how its clients are read, and whether they live in ``data.cache_dir``."""

    snippets: Callable[[DataConfig, Say], ClientSnippets]  # :func:`load_snippets`
    client_data: Callable[..., tuple[ClientData, ClientData]]  # :func:`load_client_data`
    # Read from data.cache_dir/shakespeare.sqlite, built from data.source (or downloaded by TFF)
    # when it is not there: checked against the data before TensorFlow is imported, its text
    # fetched by `fedlm-data fetch`, its build stamped on the run. False: held in memory by TFF,
    # checked when the run loads it.
    in_cache_dir: bool


# data.name (conf/data/): the federated Shakespeare database (conf/data/shakespeare.yaml, and
# TFF's published one, tff.yaml), or TFF's 3-client synthetic Shakespeare (synthetic.yaml)
DATASETS = {
    "shakespeare": DataSource(_shakespeare_snippets, _shakespeare_client_data, in_cache_dir=True),
    "synthetic": DataSource(_synthetic_snippets, _synthetic_client_data, in_cache_dir=False),
}


def data_source(name: str) -> DataSource:
    """The :class:`DataSource` of ``data.name``; :class:`ConfigError` for an unknown name."""
    one_of("data.name", name, DATASETS)
    return DATASETS[name]


def build_stamp(name: str, cache_dir: str | os.PathLike) -> dict[str, str] | None:
    """The build stamp (parser version, source and its SHA-256: :mod:`fedlm.data.build`) of the
    database that :func:`load_snippets` reads for ``name``; None for synthetic data and for a
    database without one (TFF's download)."""
    if not data_source(name).in_cache_dir:
        return None
    return read_stamp(database_path(Path(cache_dir).expanduser()))


def read_snippets(cache_dir: str | os.PathLike, split: str = "train") -> dict[str, list[str]]:
    """Client id -> snippets of ``split`` in ``cache_dir/shakespeare.sqlite``, in the order
    ``ClientData`` yields them, client ids sorted; read with sqlite3 and protobuf only."""
    if split not in SPLITS:
        raise ConfigError("split", split, SPLITS)
    database = database_path(cache_dir)
    if not database.is_file():
        raise DataError(
            f"{database} does not exist: expected a federated Shakespeare database "
            "(`fedlm-data build`)"
        )
    try:
        with contextlib.closing(sqlite3.connect(database)) as con:
            ids = con.execute(
                "SELECT DISTINCT client_id FROM client_metadata WHERE split_name = ?", (split,)
            ).fetchall()
            rows = con.execute(
                "SELECT client_id, serialized_example_proto FROM examples "
                "WHERE split_name = ? ORDER BY rowid",
                (split,),
            ).fetchall()
    except sqlite3.DatabaseError as e:
        raise DataError(f"{database} is not a federated Shakespeare database: {e}") from e
    snippets = {cid: [] for (cid,) in sorted(ids)}
    try:
        for cid, serialized in rows:
            snippets.setdefault(cid, []).append(snippet(serialized))
    except (ValueError, IndexError) as e:
        raise DataError(f"{database} does not hold tf.train.Example snippets: {e}") from e
    return snippets


def client_data_snippets(client_data: ClientData) -> dict[str, list[str]]:
    """Client id -> snippets of any ``ClientData`` with a ``snippets`` string feature (e.g. the
    synthetic data), through tf.data; slower than :func:`read_snippets` for the full dataset."""
    options = no_autotune()
    snippets = {}
    for cid in client_data.client_ids:
        dataset = client_data.create_tf_dataset_for_client(cid).with_options(options)
        snippets[cid] = [x["snippets"].numpy().decode("utf-8") for x in dataset]
    return snippets
