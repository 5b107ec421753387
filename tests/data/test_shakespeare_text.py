import collections

import pytest

from fedlm import paths
from fedlm.data.shakespeare_text import client_id, parse_complete_works, read_complete_works
from fedlm.errors import ConfigError, DataError

# A miniature of the 1994 edition: Gutenberg header and footer, the sonnets (one "speaker": not a
# play), a play with names at column 2 and one with The Comedy of Errors' names at column 0,
# notices between acts, stage directions, a mixed-case name and trailing spaces.
MINI_WORKS = """\ufeffThe Project Gutenberg EBook of The Complete Works of William Shakespeare

*** START OF THIS PROJECT GUTENBERG EBOOK COMPLETE WORKS--WILLIAM SHAKESPEARE ***

1609

THE SONNETS

by William Shakespeare

                     1
  From fairest creatures we desire increase,
  O. How can I then return in happy plight,

1600

AS YOU LIKE IT

by William Shakespeare

DRAMATIS PERSONAE.

  ROSALIND, daughter to the banished Duke
  CELIA, daughter to Frederick

<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM
SHAKESPEARE IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>

ACT I. SCENE I.
Orchard of OLIVER'S house

                    Enter ROSALIND and CELIA

  CELIA. I pray thee, Rosalind, sweet my coz, be merry.
  ROSALIND. Dear Celia, I show more mirth than I am mistress of;
    and would you yet I were merrier?
  CELIA. Herein I see thou lov'st me not.

                    Enter TOUCHSTONE

    How now, wit! Whither wander you?
  TOUCHSTONE. Mistress, you must come away to your father.
  Celia. Were you made the messenger?
  ROSALIND. Where learned you that oath, fool?
  TOUCHSTONE. Of a certain knight.
                                              Exeunt

<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM
  CELIA. A notice is never text.
SHAKESPEARE IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>

ACT II. SCENE I.

                    Enter ROSALIND
  ROSALIND. Alas, what danger will it be to us,
    Maids as we are, to travel forth so far!
  LE BEAU. Fair princess, you have lost much good sport.
  CELIA. I'll put myself in poor and mean attire.|

THE END

1593

THE COMEDY OF ERRORS

by William Shakespeare

ACT I. SCENE 1

Enter the DUKE OF EPHESUS, AEGEON

AEGEON. Proceed, Solinus, to procure my fall,
  And by the doom of death end woes and all.
DUKE. Merchant of Syracuse, plead no more;
  I am not partial to infringe our laws.
AEGEON. Yet this my comfort: when your words are done,
  My woes end likewise with the evening sun.
<Exit
  This line has lost its speaker.
DUKE. Well, Syracusian, say in brief the cause.

THE END

End of the Project Gutenberg EBook of The Complete Works of William
Shakespeare, by William Shakespeare

*** END OF THIS PROJECT GUTENBERG EBOOK COMPLETE WORKS--WILLIAM SHAKESPEARE ***

  SPEAKER. The license after the footer is never text.
  OTHER. Nor this.
by William Shakespeare
""".replace("oath, fool?", "oath, fool?   ")  # trailing spaces, which snippets lose

CELIA = [
    "I pray thee, Rosalind, sweet my coz, be merry.",
    "Herein I see thou lov'st me not.",
    "Enter TOUCHSTONE",  # a stage direction indented like speech stays with the speaker (LEAF)
    "How now, wit! Whither wander you?",
    "Were you made the messenger?",
    "I'll put myself in poor and mean attire.|",
]
ROSALIND = [
    "Dear Celia, I show more mirth than I am mistress of;\nand would you yet I were merrier?",
    "Where learned you that oath, fool?",
    "Alas, what danger will it be to us,\nMaids as we are, to travel forth so far!",
]
TOUCHSTONE = ["Mistress, you must come away to your father.", "Of a certain knight.\nExeunt"]
AEGEON = [
    "Proceed, Solinus, to procure my fall,\nAnd by the doom of death end woes and all.",
    "Yet this my comfort: when your words are done,\nMy woes end likewise with the evening sun.",
]
DUKE = [
    "Merchant of Syracuse, plead no more;\nI am not partial to infringe our laws.",
    "Well, Syracusian, say in brief the cause.",
]


def test_clients_snippets_and_splits_of_the_mini_works():
    clients = parse_complete_works(MINI_WORKS)

    assert clients.plays == ("AS YOU LIKE IT", "THE COMEDY OF ERRORS")
    assert clients.client_ids == [
        "AS_YOU_LIKE_IT_CELIA",
        "AS_YOU_LIKE_IT_ROSALIND",
        "AS_YOU_LIKE_IT_TOUCHSTONE",
        "THE_COMEDY_OF_ERRORS_AEGEON",
        "THE_COMEDY_OF_ERRORS_DUKE",
    ]
    # The last max(int(n * 0.2), 1) examples of each client are its test split.
    assert clients.train == {
        "AS_YOU_LIKE_IT_CELIA": CELIA[:5],
        "AS_YOU_LIKE_IT_ROSALIND": ROSALIND[:2],
        "AS_YOU_LIKE_IT_TOUCHSTONE": TOUCHSTONE[:1],
        "THE_COMEDY_OF_ERRORS_AEGEON": AEGEON[:1],
        "THE_COMEDY_OF_ERRORS_DUKE": DUKE[:1],
    }
    assert clients.test == {
        "AS_YOU_LIKE_IT_CELIA": CELIA[5:],
        "AS_YOU_LIKE_IT_ROSALIND": ROSALIND[2:],
        "AS_YOU_LIKE_IT_TOUCHSTONE": TOUCHSTONE[1:],
        "THE_COMEDY_OF_ERRORS_AEGEON": AEGEON[1:],
        "THE_COMEDY_OF_ERRORS_DUKE": DUKE[1:],
    }
    assert (clients.num_train_examples, clients.num_test_examples) == (10, 5)
    assert clients.dropped_clients == 1  # LE BEAU, with one example
    # As You Like It: its cast list (3), headings, a place and entries with no speaker (5),
    # THE END and the next play's year (2); the Comedy: its heading, an entry, "<Exit", the line
    # after it (the speech ended there), THE END. Notices are skipped, not discarded.
    assert clients.discarded_lines == 15
    assert clients.unknown_chars == collections.Counter({"|": 1})


def test_split_fraction_and_minimum_examples():
    clients = parse_complete_works(MINI_WORKS, test_fraction=0.5, min_examples=3)

    assert clients.client_ids == ["AS_YOU_LIKE_IT_CELIA", "AS_YOU_LIKE_IT_ROSALIND"]
    assert clients.train["AS_YOU_LIKE_IT_CELIA"] == CELIA[:3]
    assert clients.test["AS_YOU_LIKE_IT_CELIA"] == CELIA[3:]
    assert clients.test["AS_YOU_LIKE_IT_ROSALIND"] == ROSALIND[2:]
    assert clients.dropped_clients == 4


def test_zero_test_fraction_still_holds_out_one_example():
    clients = parse_complete_works(MINI_WORKS, test_fraction=0.0)

    assert clients.test["AS_YOU_LIKE_IT_CELIA"] == CELIA[5:]


def test_client_ids_follow_leaf_naming():
    assert client_id("AS YOU LIKE IT", "CELIA") == "AS_YOU_LIKE_IT_CELIA"
    assert (
        client_id("THE TRAGEDY OF OTHELLO, MOOR OF VENICE", "OTHELLO")
        == "THE_TRAGEDY_OF_OTHELLO_MOOR_OF_VENICE_OTHELLO"
    )
    assert client_id("LOVE'S LABOUR'S LOST", "FIRST LORD") == "LOVE_S_LABOUR_S_LOST_FIRST_LORD"


def test_crlf_file_with_byte_order_mark_reads_like_the_text(tmp_path):
    path = tmp_path / "works.txt"
    path.write_bytes(MINI_WORKS.replace("\n", "\r\n").encode("utf-8"))

    assert read_complete_works(path) == parse_complete_works(MINI_WORKS)


def test_text_without_plays_is_a_data_error(tmp_path):
    path = tmp_path / "not_plays.txt"
    path.write_text("THE SONNETS\n\nby William Shakespeare\n\n  Shall I compare thee\n")

    with pytest.raises(DataError, match=r"not_plays\.txt has no plays: expected"):
        read_complete_works(path)


@pytest.mark.parametrize("text", ["", "\n\n", "Just some prose.\n"])
def test_an_empty_source_or_one_without_a_play_line_has_no_plays(tmp_path, text):
    path = tmp_path / "empty.txt"
    path.write_text(text)

    with pytest.raises(DataError, match=r"empty\.txt has no plays: expected"):
        read_complete_works(path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf_16_file_with_a_byte_order_mark_reads_like_the_text(tmp_path, encoding):
    path = tmp_path / "works.txt"
    text = MINI_WORKS if encoding == "utf-16" else "\ufeff" + MINI_WORKS
    path.write_bytes(text.encode(encoding))  # "utf-16" writes its own byte-order mark

    assert read_complete_works(path) == parse_complete_works(MINI_WORKS)


def test_missing_source_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"cannot read text file .*missing\.txt"):
        read_complete_works(tmp_path / "missing.txt")


def test_too_few_examples_everywhere_is_a_data_error():
    with pytest.raises(DataError, match="no character has at least 50 examples"):
        parse_complete_works(MINI_WORKS, min_examples=50)


@pytest.mark.parametrize(
    ("arguments", "key"),
    [
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"min_examples": 1}, "min_examples"),
    ],
)
def test_bad_split_settings_are_config_errors(arguments, key):
    with pytest.raises(ConfigError) as error:
        parse_complete_works(MINI_WORKS, **arguments)
    assert error.value.key == key


SHARED_TEXT = paths.shared_data_dir() / "shakespeare" / "complete_works_gutenberg100_1994.txt"


@pytest.mark.skipif(not SHARED_TEXT.exists(), reason=f"shared corpus missing: {SHARED_TEXT}")
def test_the_1994_edition_parses_into_plausible_clients():
    clients = read_complete_works(SHARED_TEXT)

    assert len(clients.plays) == 36  # every play of the edition; the sonnets and poem dropped
    assert "THE COMEDY OF ERRORS" in clients.plays
    assert 1000 < len(clients.train) < 1200
    assert 20_000 < clients.num_train_examples < 30_000
    assert 5_000 < clients.num_test_examples < 7_000
    for cid in (
        "AS_YOU_LIKE_IT_CELIA",
        "THE_TRAGEDY_OF_OTHELLO_MOOR_OF_VENICE_OTHELLO",
        "THE_TRAGEDY_OF_KING_LEAR_LEAR",
        "THE_COMEDY_OF_ERRORS_DROMIO_OF_SYRACUSE",
    ):
        assert len(clients.train[cid]) >= 1 and len(clients.test[cid]) >= 1
    assert clients.train["AS_YOU_LIKE_IT_CELIA"][0] == (
        "I pray thee, Rosalind, sweet my coz, be merry."
    )
    assert clients.train["THE_COMEDY_OF_ERRORS_AEGEON"][0] == AEGEON[0]
    # No notice text and no angle brackets ever reach a snippet.
    assert "<" not in clients.unknown_chars and ">" not in clients.unknown_chars
