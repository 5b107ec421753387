import collections

import pytest

from fedlm import paths, vocab
from fedlm.data.corpus import load_corpus, read_book, split_holdout, strip_gutenberg
from fedlm.errors import ConfigError, DataError

WRAPPED = (
    "?The Project Gutenberg eBook of A Tiny Book\n"
    "\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK A TINY BOOK ***\n"
    "\n"
    "\n"
    "  It was the best of times.\n"
    "It was the worst of times.\n"
    "\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK A TINY BOOK ***\n"
    "Updated editions will replace the previous one.\n"
)


def test_strip_gutenberg_keeps_only_the_book():
    assert strip_gutenberg(WRAPPED) == "  It was the best of times.\nIt was the worst of times."


def test_strip_gutenberg_leaves_a_bare_book_whole():
    assert strip_gutenberg("\nIt was the best of times,\nit was the worst.\n") == (
        "It was the best of times,\nit was the worst."
    )


def test_read_book_normalises_line_ends_byte_order_mark_and_latin_1(tmp_path):
    utf8 = tmp_path / "utf8.txt"
    utf8.write_bytes("\ufeffprot\u00e9g\u00e9s\r\nnext\rlast\n".encode())
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"Laoco\xf6n\r\n")

    assert read_book(utf8) == "prot\u00e9g\u00e9s\nnext\nlast\n"
    assert read_book(latin1) == "Laoco\u00f6n\n"


def test_load_corpus_encodes_books_and_counts_unknown_characters(tmp_path):
    (tmp_path / "b_wrapped.txt").write_text(WRAPPED.replace("\n", "\r\n"))
    (tmp_path / "a_bare.txt").write_text("Caf\u00e9 {x}\n")

    corpus = load_corpus([tmp_path], unknown_chars="oov")

    assert list(corpus.texts) == ["a_bare", "b_wrapped"]  # a directory's books in name order
    assert corpus.texts["b_wrapped"] == strip_gutenberg(WRAPPED)
    assert corpus.ids["a_bare"] == vocab.encode("Caf\u00e9 {x}", "oov")
    assert corpus.ids["a_bare"][3] == vocab.OOV_ID
    assert corpus.unknown_chars == collections.Counter({"\u00e9": 1, "{": 1, "}": 1})
    assert corpus.num_chars == len("Caf\u00e9 {x}") + len(strip_gutenberg(WRAPPED))
    assert load_corpus([tmp_path / "a_bare.txt"]).ids["a_bare"] == vocab.encode("Caf {x}")


def test_corpus_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt does not exist"):
        load_corpus([tmp_path / "nope.txt"])
    with pytest.raises(DataError, match=r"has no \*\.txt files"):
        load_corpus([tmp_path])
    header = WRAPPED.split("\n\n\n")[0]
    (tmp_path / "empty.txt").write_text(header + "\n*** END OF THE PROJECT GUTENBERG EBOOK ***\n")
    with pytest.raises(DataError, match=r"empty\.txt has no text"):
        load_corpus([tmp_path / "empty.txt"])
    with pytest.raises(ConfigError):
        load_corpus([tmp_path], unknown_chars="keep")


def test_split_holdout_keeps_the_end_of_every_book():
    train, validation = split_holdout({"a": list(range(10)), "b": [20, 21, 22, 23]}, 0.25)

    assert train == [0, 1, 2, 3, 4, 5, 6, 7, 20, 21, 22]
    assert validation == [8, 9, 23]
    assert split_holdout({"a": [1, 2, 3]}, 0.0) == ([1, 2, 3], [])
    with pytest.raises(ConfigError) as error:
        split_holdout({"a": [1]}, 1.0, key="pretrain.validation_fraction")
    assert error.value.key == "pretrain.validation_fraction"


DICKENS = paths.shared_data_dir() / "dickens"


@pytest.mark.skipif(not DICKENS.is_dir(), reason=f"shared corpus missing: {DICKENS}")
def test_the_shared_dickens_books_load_without_their_gutenberg_wrapping():
    corpus = load_corpus()

    assert list(corpus.texts) == ["a_christmas_carol", "a_tale_of_two_cities"]
    carol, tale = corpus.texts["a_christmas_carol"], corpus.texts["a_tale_of_two_cities"]
    assert carol.startswith("A CHRISTMAS CAROL") and carol.endswith("God bless Us, Every One!")
    assert tale.startswith("It was the best of times,")
    assert "Gutenberg" not in carol and "\r" not in tale
    assert corpus.unknown_chars["\u00f6"] == 1  # Laocoön, the Carol's one Latin-1 byte
    assert corpus.unknown_chars["\u00e9"] == 2  # protégés in the Tale (UTF-8)
    assert corpus.num_chars == len(carol) + len(tale) - sum(corpus.unknown_chars.values())
