"""What pre-training trains and is evaluated on: the papers' 90-id pipeline on the books'
paragraphs, and the Shakespeare test snippets of the transfer accuracy."""

import contextlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from shipped_models import model_config

from fedlm.config import PretrainConfig
from fedlm.data.build import build_shakespeare, database_path
from fedlm.data.inmemory import snippet_dataset
from fedlm.data.paper import PAD, VOCAB_SIZE, PaperPipeline
from fedlm.errors import DataError
from fedlm.paths import shared_data_dir
from fedlm.pretraining.batches import paper_batches, paragraphs, shakespeare_test_snippets


def test_paragraphs_are_blank_line_separated_and_keep_their_line_breaks():
    text = "First line\nsecond line.\n\n  \nNext one.\r\n\r\nLast\n"
    assert paragraphs(text) == ["First line\nsecond line.", "Next one.", "Last"]


def test_the_batches_are_the_paper_pipelines_on_the_books_paragraphs_last_ones_held_out(
    paragraph_books,
):
    cfg = PretrainConfig(
        model=model_config("tiny"),
        corpus=paragraph_books,
        pipeline="paper",
        seq_len=10,
        batch_size=4,
        validation_fraction=0.1,
    )
    data = paper_batches(cfg)
    assert (data.vocab_size, data.ignore_id) == (VOCAB_SIZE, PAD)
    assert (data.train_size, data.held_out_size) == (2 * 27, 2 * 3)  # 3 of each book's 30
    one, two = (Path(path).read_text().split("\n\n") for path in paragraph_books)
    held_out = [p.strip() for p in one[27:] + two[27:]]
    pipeline = PaperPipeline(seq_len=10, batch_size=4)
    expected = list(pipeline.evaluate(snippet_dataset(held_out)).as_numpy_iterator())
    got = list(data.held_out.as_numpy_iterator())
    assert len(got) == len(expected) == data.held_out_batches
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_gutenberg_shakespeare_test_split_is_read_from_the_shared_text():
    if not (shared_data_dir() / "shakespeare/complete_works_gutenberg100_1994.txt").exists():
        pytest.skip(f"no Shakespeare text under {shared_data_dir()}")
    source, snippets = shakespeare_test_snippets("gutenberg")
    assert source == "gutenberg" and len(snippets) > 1000


def test_the_sqlite_test_split_of_an_older_build_is_not_used(isolated_cache, tmp_path, monkeypatch):
    source = tmp_path / "works.txt"
    source.write_text("A PLAY\n\nby William Shakespeare\n\n  ANN. One.\n  BEN. Two.\n" * 2)
    cache_dir = isolated_cache / "shakespeare"
    build_shakespeare(source, cache_dir, log=lambda line: None)
    with contextlib.closing(sqlite3.connect(database_path(cache_dir))) as con:
        con.execute("UPDATE fedlm_build SET value = '1' WHERE key = 'parser_version'")
        con.commit()
    monkeypatch.setenv("FEDLM_DATA_DIR", str(tmp_path / "no_shared_data"))

    with pytest.raises(DataError, match="was built by fedlm's parser version 1"):
        shakespeare_test_snippets("sqlite")
