import hashlib

import pytest
import tensorflow_federated as tff

import fedlm
from fedlm import paths
from fedlm.data.build import build_shakespeare, database_path, read_stamp, stale_reason
from fedlm.data.clients import read_snippets
from fedlm.data.shakespeare_text import PARSER_VERSION
from fedlm.errors import DataError

TINY_WORKS = """*** START OF THIS PROJECT GUTENBERG EBOOK COMPLETE WORKS ***

A TINY PLAY

by William Shakespeare

  ANNE. One,
    and one.
  BEN. Two.
  ANNE. Three.
  BEN. Four.
  ANNE. Five.

*** END OF THIS PROJECT GUTENBERG EBOOK COMPLETE WORKS ***
"""
TRAIN = {"A_TINY_PLAY_ANNE": ["One,\nand one.", "Three."], "A_TINY_PLAY_BEN": ["Two."]}
TEST = {"A_TINY_PLAY_ANNE": ["Five."], "A_TINY_PLAY_BEN": ["Four."]}


def _client_snippets(client_data):
    return {
        cid: [x["snippets"].numpy().decode() for x in client_data.create_tf_dataset_for_client(cid)]
        for cid in client_data.client_ids
    }


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "works.txt"
    path.write_text(TINY_WORKS)
    return path


def test_tff_load_data_reads_the_build_with_both_splits(source, tmp_path):
    cache_dir = tmp_path / "cache"
    clients = build_shakespeare(source, cache_dir, log=lambda line: None)

    train, test = tff.simulation.datasets.shakespeare.load_data(cache_dir=str(cache_dir))

    assert (clients.train, clients.test) == (TRAIN, TEST)
    assert _client_snippets(train) == TRAIN
    assert _client_snippets(test) == TEST
    assert read_snippets(cache_dir, "train") == TRAIN
    assert read_snippets(cache_dir, "test") == TEST
    assert sorted(p.name for p in cache_dir.iterdir()) == ["shakespeare.sqlite"]


def test_a_build_is_stamped_with_the_parser_version_and_its_source(source, tmp_path):
    build_shakespeare(source, tmp_path, log=lambda line: None)

    stamp = read_stamp(database_path(tmp_path))

    assert stamp == {
        "parser_version": str(PARSER_VERSION),
        "source": str(source.resolve()),
        "source_sha256": hashlib.sha256(TINY_WORKS.encode()).hexdigest(),
        "test_fraction": "0.2",
        "min_examples": "2",
        "fedlm_version": fedlm.__version__,
    }
    assert stale_reason(database_path(tmp_path), source) is None
    with pytest.raises(
        DataError, match=rf"\(built by fedlm's parser version {PARSER_VERSION} from"
    ):
        build_shakespeare(source, tmp_path)


def test_an_existing_database_is_replaced_only_with_force(source, tmp_path):
    target = database_path(tmp_path)
    target.write_bytes(b"a good database")

    with pytest.raises(
        DataError,
        match=r"shakespeare\.sqlite already exists \(no fedlm build stamp\): expected force",
    ):
        build_shakespeare(source, tmp_path)
    assert target.read_bytes() == b"a good database"

    build_shakespeare(source, tmp_path, force=True, log=lambda line: None)
    assert read_snippets(tmp_path, "test") == TEST


def test_an_interrupted_build_leaves_nothing_and_keeps_the_old_database(source, tmp_path):
    def interrupt_at_test_split(line):
        if "'test'" in line:
            raise KeyboardInterrupt

    cache_dir = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        build_shakespeare(source, cache_dir, log=interrupt_at_test_split)
    assert list(cache_dir.iterdir()) == []

    database_path(cache_dir).write_bytes(b"a good database")
    with pytest.raises(KeyboardInterrupt):
        build_shakespeare(source, cache_dir, force=True, log=interrupt_at_test_split)
    assert [p.name for p in cache_dir.iterdir()] == ["shakespeare.sqlite"]
    assert database_path(cache_dir).read_bytes() == b"a good database"


def test_what_a_killed_build_left_behind_is_removed_by_the_next_one(source, tmp_path):
    """A build killed with SIGKILL cannot clean up: its temporary database (atomic_path) and
    scratch folder stay until the next build of the same database removes them."""
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    leftovers = [
        cache_dir / ".shakespeare.sqlite.x1y2z3.tmp",
        cache_dir / ".shakespeare.sqlite.ab12",
    ]
    leftovers[0].write_bytes(b"half a database")
    leftovers[1].mkdir()
    (leftovers[1] / "train.sqlite").write_bytes(b"x" * 1000)
    (cache_dir / "keep.txt").write_text("not the build's")
    lines = []

    build_shakespeare(source, cache_dir, log=lines.append)

    assert sorted(p.name for p in cache_dir.iterdir()) == ["keep.txt", "shakespeare.sqlite"]
    removed = [f"removed {path}, left by an interrupted build" for path in leftovers]
    assert sorted(lines[:2]) == sorted(removed)
    assert read_snippets(cache_dir, "test") == TEST


def test_an_empty_source_is_a_data_error_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.txt has no plays"):
        build_shakespeare(empty, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_missing_source_writes_nothing(tmp_path):
    with pytest.raises(DataError, match=r"missing\.txt"):
        build_shakespeare(tmp_path / "missing.txt", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


SHARED_TEXT = paths.shared_data_dir() / "shakespeare" / "complete_works_gutenberg100_1994.txt"


# The real corpus (the slow set's): ~10 s idle, 30 s busy. The default suite parses it
# (tests/data/test_shakespeare_text.py) and builds small texts through the same code.
@pytest.mark.slow
@pytest.mark.skipif(not SHARED_TEXT.exists(), reason=f"shared corpus missing: {SHARED_TEXT}")
def test_the_real_dataset_builds_and_loads(tmp_path):
    clients = build_shakespeare(SHARED_TEXT, tmp_path, log=lambda line: None)
    train, test = tff.simulation.datasets.shakespeare.load_data(cache_dir=str(tmp_path))

    assert len(train.client_ids) == len(test.client_ids) == len(clients.train) > 1000
    for cid in (
        "AS_YOU_LIKE_IT_CELIA",
        "THE_TRAGEDY_OF_OTHELLO_MOOR_OF_VENICE_OTHELLO",
        "THE_TRAGEDY_OF_KING_LEAR_LEAR",
    ):
        assert [
            x["snippets"].numpy().decode() for x in test.create_tf_dataset_for_client(cid)
        ] == clients.test[cid]
    train_snippets = read_snippets(tmp_path, "train")
    assert train_snippets == {cid: clients.train[cid] for cid in sorted(clients.train)}
