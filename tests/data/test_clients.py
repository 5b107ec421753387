import contextlib
import sqlite3
import urllib.error
import urllib.request

import pytest
import tensorflow_federated as tff

from fedlm import paths
from fedlm.config import DataConfig
from fedlm.data.build import (
    STAMP_TABLE,
    build_shakespeare,
    database_path,
    read_stamp,
    write_sql_client_data,
)
from fedlm.data.clients import (
    build_stamp,
    client_data_snippets,
    load_client_data,
    load_snippets,
    read_snippets,
)
from fedlm.data.shakespeare_text import PARSER_VERSION
from fedlm.errors import ConfigError, DataError

TINY_WORKS = """A TINY PLAY

by William Shakespeare

  ANNE. One.
  BEN. Two.
  ANNE. Three.
  BEN. Four.
"""
TRAIN = {"A_TINY_PLAY_ANNE": ["One."], "A_TINY_PLAY_BEN": ["Two."]}
TEST = {"A_TINY_PLAY_ANNE": ["Three."], "A_TINY_PLAY_BEN": ["Four."]}
SYNTHETIC_CUPID = {"THE_TAMING_OF_THE_SHREW_CUPID": ["Hail to thee, worthy Timon, and to all"]}


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "works.txt"
    path.write_text(TINY_WORKS)
    return path


@pytest.fixture
def no_network(monkeypatch):
    """TFF's download is the one network boundary: make it fail at once, as it does offline."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_synthetic_is_tffs_synthetic_shakespeare_for_both_splits():
    train, test = load_client_data("synthetic", "")

    snippets = client_data_snippets(train)
    assert sorted(snippets) == sorted(
        tff.simulation.datasets.shakespeare.get_synthetic().client_ids
    )
    assert {k: snippets[k] for k in SYNTHETIC_CUPID} == SYNTHETIC_CUPID
    assert client_data_snippets(test) == snippets


def test_the_build_stamp_a_run_records_is_that_of_the_database_it_reads(source, tmp_path):
    build_shakespeare(source, tmp_path, log=lambda line: None)
    stamp = build_stamp("shakespeare", tmp_path)
    assert stamp == read_stamp(database_path(tmp_path))
    assert stamp["parser_version"] == str(PARSER_VERSION)
    assert build_stamp("synthetic", tmp_path) is None
    assert build_stamp("shakespeare", tmp_path / "empty") is None  # no database there


def test_an_unknown_name_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        load_client_data("emnist", "")
    assert error.value.key == "data.name"


def test_an_existing_database_is_loaded(source, tmp_path):
    build_shakespeare(source, tmp_path, log=lambda line: None)

    train, test = load_client_data("shakespeare", tmp_path, source=tmp_path / "unused.txt")

    assert client_data_snippets(train) == TRAIN
    assert client_data_snippets(test) == TEST


def test_a_missing_database_is_built_from_the_source(source, tmp_path, capsys):
    cache_dir = tmp_path / "cache"

    train, test = load_client_data("shakespeare", cache_dir, source=source)

    assert capsys.readouterr().out.splitlines()[0] == (
        f"Building federated Shakespeare from {source} into {cache_dir}/shakespeare.sqlite"
    )
    assert client_data_snippets(train) == TRAIN
    assert client_data_snippets(test) == TEST


def test_a_missing_source_is_a_data_error_naming_it(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("FEDLM_CACHE_DIR", str(tmp_path / "cache"))  # no fetched copy either
    with pytest.raises(DataError, match=r"data.source='.*gone\.txt' does not exist"):
        load_client_data("shakespeare", tmp_path, source=tmp_path / "gone.txt")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_names_both_ways_out(tmp_path, no_network):
    with pytest.raises(DataError) as error:
        load_client_data("shakespeare", tmp_path)

    message = str(error.value)
    assert "has no shakespeare.sqlite and TFF could not download it" in message
    assert "fedlm-data build --source" in message and f"--cache-dir {tmp_path}" in message
    assert "set data.cache_dir to a directory that has shakespeare.sqlite" in message
    assert not database_path(tmp_path).exists()


def test_a_cache_dir_that_is_a_file_is_a_data_error_naming_it(source, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("")
    with pytest.raises(DataError, match=r"^data.cache_dir='.*notes\.txt' is a file: expected "):
        load_client_data("shakespeare", a_file, source=source)

    build_shakespeare(source, tmp_path / "cache", log=lambda line: None)
    database = database_path(tmp_path / "cache")
    with pytest.raises(DataError, match=rf"; set data.cache_dir='{tmp_path / 'cache'}', the"):
        load_client_data("shakespeare", database)


def test_the_cache_dir_is_expanded(source, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    build_shakespeare(source, tmp_path / "cache", log=lambda line: None)

    train, _ = load_client_data("shakespeare", "~/cache")

    assert client_data_snippets(train) == TRAIN
    assert read_snippets("~/cache", "test") == TEST


def test_a_database_that_is_not_tffs_is_a_data_error(tmp_path):
    database_path(tmp_path).write_bytes(b"not a database")

    with pytest.raises(DataError, match="cannot be read as federated Shakespeare"):
        load_client_data("shakespeare", tmp_path)
    with pytest.raises(DataError, match="is not a federated Shakespeare database"):
        read_snippets(tmp_path, "train")


def test_read_snippets_checks_split_and_file(tmp_path):
    with pytest.raises(ConfigError) as error:
        read_snippets(tmp_path, "validation")
    assert error.value.key == "split"
    with pytest.raises(DataError, match=r"shakespeare\.sqlite does not exist"):
        read_snippets(tmp_path, "train")


def test_read_snippets_keeps_clients_without_examples(source, tmp_path):
    build_shakespeare(source, tmp_path, log=lambda line: None)
    with sqlite3.connect(database_path(tmp_path)) as con:
        con.execute("DELETE FROM examples WHERE client_id = 'A_TINY_PLAY_BEN'")

    assert read_snippets(tmp_path, "train") == {"A_TINY_PLAY_ANNE": ["One."], "A_TINY_PLAY_BEN": []}


# A database built by an older parser has other clients: it is rebuilt (or refused), never used.


def _as_built_by_an_older_fedlm(database, stamp_version: str | None) -> None:
    """Make ``database`` look like an older build: a client gone, and the stamp of an older
    parser, or none (builds before the stamp existed)."""
    with contextlib.closing(sqlite3.connect(database)) as con:
        con.execute("DELETE FROM examples WHERE client_id = 'A_TINY_PLAY_BEN'")
        con.execute("DELETE FROM client_metadata WHERE client_id = 'A_TINY_PLAY_BEN'")
        if stamp_version is None:
            con.execute(f"DROP TABLE {STAMP_TABLE}")
        else:
            con.execute(
                f"UPDATE {STAMP_TABLE} SET value = ? WHERE key = 'parser_version'", (stamp_version,)
            )
        con.commit()


@pytest.mark.parametrize(
    ("stamp_version", "reason"),
    [
        ("1", "was built by fedlm's parser version 1"),
        (None, "was built by fedlm's parser version 1 (it has no build stamp)"),
    ],
)
def test_an_older_build_is_rebuilt_from_the_source_with_one_line(
    source, tmp_path, capsys, stamp_version, reason
):
    build_shakespeare(source, tmp_path, log=lambda line: None)
    database = database_path(tmp_path)
    _as_built_by_an_older_fedlm(database, stamp_version)

    train, test = load_client_data("shakespeare", tmp_path, source=source)

    assert capsys.readouterr().out.splitlines() == [
        f"Rebuilding {database} from {source}: it {reason}, this fedlm's is version "
        f"{PARSER_VERSION}"
    ]
    assert client_data_snippets(train) == TRAIN
    assert client_data_snippets(test) == TEST
    assert read_stamp(database)["parser_version"] == str(PARSER_VERSION)
    load_client_data("shakespeare", tmp_path, source=source)  # current now: read as it is
    assert capsys.readouterr().out == ""


def test_an_older_build_without_a_source_is_refused_and_left_alone(source, tmp_path):
    build_shakespeare(source, tmp_path, log=lambda line: None)
    database = database_path(tmp_path)
    _as_built_by_an_older_fedlm(database, "1")
    before = database.read_bytes()

    with pytest.raises(DataError) as error:
        load_client_data("shakespeare", tmp_path, source=tmp_path / "gone.txt")

    assert str(error.value).startswith(
        f"{database} was built by fedlm's parser version 1, and this fedlm's is version "
        f"{PARSER_VERSION}: its clients differ. Rebuild it: `uv run fedlm-data build --source "
    )
    assert f"--cache-dir {tmp_path} --force`" in str(error.value)
    assert database.read_bytes() == before


def test_a_database_fedlm_did_not_build_is_read_as_it_is(source, tmp_path, capsys):
    """No stamp, and clients of other plays than the source's: TFF's download, say."""
    tffs = {"ALL_S_WELL_THAT_ENDS_WELL_CELIA": ["One."], "A_TINY_PLAY_ANNE": ["Two."]}
    write_sql_client_data({"train": tffs, "test": tffs}, database_path(tmp_path), log=print)
    capsys.readouterr()

    train, _ = load_client_data("shakespeare", tmp_path, source=source)

    assert client_data_snippets(train) == tffs
    assert capsys.readouterr().out == ""
    assert read_stamp(database_path(tmp_path)) is None


# load_snippets: the one call a run makes; each source read once.


def test_load_snippets_gives_synthetic_data_for_both_splits():
    snippets = load_snippets(DataConfig(name="synthetic"))

    assert {k: snippets.train[k] for k in SYNTHETIC_CUPID} == SYNTHETIC_CUPID
    assert snippets.test == snippets.train and snippets.test is not snippets.train
    assert snippets.train == client_data_snippets(
        tff.simulation.datasets.shakespeare.get_synthetic()
    )


def test_load_snippets_of_an_unknown_name_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        load_snippets(DataConfig(name="emnist"))
    assert error.value.key == "data.name"


def test_load_snippets_builds_a_missing_database_and_says_so(source, tmp_path):
    cache_dir, lines = tmp_path / "cache", []

    snippets = load_snippets(DataConfig(cache_dir=str(cache_dir), source=str(source)), lines.append)

    assert lines[0] == (
        f"Building federated Shakespeare from {source} into {cache_dir}/shakespeare.sqlite"
    )
    assert (snippets.train, snippets.test) == (TRAIN, TEST)
    again = []  # built now: read as it is, without a word
    assert load_snippets(DataConfig(cache_dir=str(cache_dir)), again.append) == snippets
    assert again == []


def test_load_snippets_rebuilds_an_older_build_with_one_line(source, tmp_path):
    build_shakespeare(source, tmp_path, log=lambda line: None)
    database = database_path(tmp_path)
    _as_built_by_an_older_fedlm(database, "1")
    lines = []

    snippets = load_snippets(DataConfig(cache_dir=str(tmp_path), source=str(source)), lines.append)

    assert lines == [
        f"Rebuilding {database} from {source}: it was built by fedlm's parser version 1, "
        f"this fedlm's is version {PARSER_VERSION}"
    ]
    assert (snippets.train, snippets.test) == (TRAIN, TEST)


def test_load_snippets_names_both_ways_out_of_a_failed_download(tmp_path, no_network):
    with pytest.raises(DataError, match="has no shakespeare.sqlite and TFF could not download"):
        load_snippets(DataConfig(cache_dir=str(tmp_path)))
    assert not database_path(tmp_path).exists()


SHARED_TEXT = paths.shared_data_dir() / "shakespeare" / "complete_works_gutenberg100_1994.txt"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_TEXT.exists(), reason=f"shared corpus missing: {SHARED_TEXT}")
def test_a_source_not_at_hand_is_fetched_checked_and_built(tmp_path, monkeypatch, text_server):
    text_server.files["/1994.txt"] = SHARED_TEXT.read_bytes()
    monkeypatch.setenv("FEDLM_CACHE_DIR", str(tmp_path / "cache"))
    fetched = tmp_path / "cache/texts/shakespeare/complete_works_gutenberg100_1994.txt"

    train, test = load_client_data(
        "shakespeare", tmp_path / "db", tmp_path / "gone.txt", f"{text_server.url}/1994.txt"
    )

    assert fetched.read_bytes() == SHARED_TEXT.read_bytes()
    assert len(train.client_ids) == len(test.client_ids) == 1117
    assert text_server.ranges == [None]
