import functools
import hashlib
import io
import re
import zipfile

import pytest

from fedlm import paths
from fedlm.data.fetch import (
    BOOKS,
    CLIENTS_1994,
    PLAYS_1994,
    SHAKESPEARE,
    Text,
    check_book,
    check_complete_works,
    complete_works_path,
    corpus_files,
    fetch,
    fetched_path,
)
from fedlm.errors import ConfigError, DataError

# A miniature of the 1994 edition as Gutenberg serves it: a byte-order mark, CRLF line ends,
# the header and footer, two plays (names at column 2, and at column 0 as in The Comedy of Errors).
MINI_WORKS = """\ufeffThe Project Gutenberg EBook of The Complete Works of William Shakespeare

*** START OF THIS PROJECT GUTENBERG EBOOK COMPLETE WORKS--WILLIAM SHAKESPEARE ***

1600

AS YOU LIKE IT

by William Shakespeare

ACT I. SCENE I.

  CELIA. I pray thee, Rosalind, sweet my coz, be merry.
  ROSALIND. Dear Celia, I show more mirth than I am mistress of;
    and would you yet I were merrier?
  CELIA. Herein I see thou lov'st me not.
  ROSALIND. Where learned you that oath, fool?

THE END

1593

THE COMEDY OF ERRORS

by William Shakespeare

AEGEON. Proceed, Solinus, to procure my fall,
  And by the doom of death end woes and all.
DUKE. Merchant of Syracuse, plead no more;
  I am not partial to infringe our laws.
AEGEON. Yet this my comfort: when your words are done,
  My woes end likewise with the evening sun.
DUKE. Well, Syracusian, say in brief the cause.

THE END

*** END OF THIS PROJECT GUTENBERG EBOOK COMPLETE WORKS--WILLIAM SHAKESPEARE ***
""".replace("\n", "\r\n").encode()
MINI = Text(
    SHAKESPEARE.relative,
    "the mini works",
    functools.partial(
        check_complete_works, plays=("AS YOU LIKE IT", "THE COMEDY OF ERRORS"), clients=4
    ),
)
HALF = len(MINI_WORKS) // 2  # 491 of 983 bytes: the first play only


def _zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty FEDLM_CACHE_DIR and FEDLM_DATA_DIR."""
    monkeypatch.setenv("FEDLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDLM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "cache"


def _fetch(url, text=MINI, **kwargs):
    lines = []
    target = fetch(url, text, log=lines.append, stream=io.StringIO(), **kwargs)
    return target, lines


def _folder(target):
    return sorted(p.name for p in target.parent.iterdir())


def test_the_plain_text_is_fetched_checked_and_renamed_into_place(cache, text_server):
    text_server.files["/100.txt"] = MINI_WORKS

    target, lines = _fetch(f"{text_server.url}/100.txt")

    assert target == cache / "texts/shakespeare/complete_works_gutenberg100_1994.txt"
    assert target == fetched_path(SHAKESPEARE.relative)
    assert target.read_bytes() == MINI_WORKS  # as served: the parser normalises BOM and CRLF
    assert _folder(target) == [target.name]  # no .part, no temporary file
    assert len(lines) == 1 and lines[0].startswith(f"fetched {target} (0.0 MB, ")
    assert text_server.ranges == [None]
    # Once there, it is never fetched again.
    assert _fetch(f"{text_server.url}/100.txt") == (target, [])
    assert text_server.ranges == [None]


def test_a_zip_gives_the_text_inside_it(cache, text_server):
    text_server.files["/1994-01-100.zip"] = _zip({"README": b"not this", "100.txt": MINI_WORKS})

    target, _ = _fetch(f"{text_server.url}/1994-01-100.zip")

    assert target.read_bytes() == MINI_WORKS
    assert _folder(target) == [target.name]


def test_a_truncated_text_is_refused_and_nothing_is_left(cache, text_server):
    text_server.files["/100.txt"] = MINI_WORKS[:HALF]
    url = f"{text_server.url}/100.txt"
    target = fetched_path(SHAKESPEARE.relative)

    with pytest.raises(DataError) as error:
        _fetch(url)

    assert str(error.value) == (
        f"data.source_url='{url}' did not give the mini works: its parse gives 1 plays and 2 "
        "clients, expected 2 and 4 (missing 1: THE COMEDY OF ERRORS) (491 bytes arrived); download "
        f"it yourself and put the text at {target}, or set data.source_url to a mirror"
    )
    assert _folder(target) == []


def test_a_truncated_zip_is_refused(cache, text_server):
    archive = _zip({"100.txt": MINI_WORKS})
    text_server.files["/works.zip"] = archive[: len(archive) - 30]
    url = f"{text_server.url}/works.zip"
    target = fetched_path(SHAKESPEARE.relative)

    with pytest.raises(DataError) as error:
        _fetch(url)

    assert str(error.value) == (
        f"data.source_url='{url}' did not give the mini works: it is a zip archive that cannot "
        f"be read (BadZipFile: File is not a zip file) ({len(archive) - 30:,} bytes arrived); "
        f"download it yourself and put the text (unzipped) at {target}, or set data.source_url "
        "to a mirror"
    )
    assert _folder(target) == []


def test_a_download_cut_off_keeps_its_part_and_the_next_one_resumes_it(cache, text_server):
    text_server.files["/100.txt"] = MINI_WORKS
    text_server.cut_after["/100.txt"] = 300
    url = f"{text_server.url}/100.txt"
    target = fetched_path(SHAKESPEARE.relative)

    with pytest.raises(DataError) as error:
        _fetch(url)

    assert str(error.value) == (
        f"cannot fetch the mini works from data.source_url='{url}' (EOFError: the connection "
        "closed after 300 of 983 bytes): run again to resume from 300 bytes, or download it "
        f"yourself and put the text at {target}, or set data.source_url to a mirror"
    )
    (part,) = target.parent.glob("*.part")
    assert part.name.startswith(f"{target.name}.") and part.read_bytes() == MINI_WORKS[:300]
    assert not target.exists()

    del text_server.cut_after["/100.txt"]
    _fetch(url)

    assert text_server.ranges == [None, "bytes=300-"]
    assert target.read_bytes() == MINI_WORKS
    assert _folder(target) == [target.name]


def test_a_server_that_ignores_the_range_gives_the_whole_file_again(cache, text_server):
    text_server.files["/100.txt"] = MINI_WORKS
    text_server.ignore_range = True
    url = f"{text_server.url}/100.txt"
    text_server.cut_after["/100.txt"] = 300
    with pytest.raises(DataError):
        _fetch(url)
    del text_server.cut_after["/100.txt"]

    target, _ = _fetch(url)

    assert text_server.ranges == [None, "bytes=300-"]  # asked, answered with 200 and all of it
    assert target.read_bytes() == MINI_WORKS


def test_a_part_that_is_whole_already_is_not_downloaded_again(cache, text_server):
    text_server.files["/100.txt"] = MINI_WORKS
    url = f"{text_server.url}/100.txt"
    target = fetched_path(SHAKESPEARE.relative)
    target.parent.mkdir(parents=True)
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]  # a part is named for its address
    part = target.with_name(f"{target.name}.{digest}.part")
    part.write_bytes(MINI_WORKS)

    _fetch(url)

    assert text_server.ranges == [f"bytes={len(MINI_WORKS)}-"]  # answered 416, nothing sent
    assert target.read_bytes() == MINI_WORKS
    assert _folder(target) == [target.name]


def test_offline_is_one_line_naming_the_address_the_error_and_the_way_by_hand(
    cache, closed_port_url
):
    url = f"{closed_port_url}/1994-01-100.zip"
    target = fetched_path(SHAKESPEARE.relative)

    with pytest.raises(DataError) as error:
        _fetch(url)

    assert str(error.value) == (
        f"cannot fetch the mini works from data.source_url='{url}' (ConnectionRefusedError: "
        "[Errno 111] Connection refused): download it yourself and put the text (unzipped) at "
        f"{target}, or set data.source_url to a mirror"
    )
    assert _folder(target) == []


def test_a_missing_file_names_the_http_status(cache, text_server):
    url = f"{text_server.url}/gone.txt"

    with pytest.raises(DataError, match=r"\(HTTP 404 Not Found\): download it yourself"):
        _fetch(url)


def test_the_progress_bar_is_one_line_updated_in_place_on_a_terminal(cache, text_server):
    text_server.files["/100.txt"] = MINI_WORKS
    stream = Tty()

    fetch(f"{text_server.url}/100.txt", MINI, log=lambda line: None, stream=stream)

    shown = stream.getvalue()
    last = f"\rcomplete_works_gutenberg100_1994 [{'#' * 20}] 100% 0.0 of 0.0 MB\n"
    assert shown.endswith(last) and len(last) < 80
    assert shown.count("\n") == 1 and shown.startswith("\r")


def test_the_1994_edition_is_what_the_check_expects():
    shared = paths.shared_data_dir() / SHAKESPEARE.relative
    if not shared.exists():
        pytest.skip(f"shared corpus missing: {shared}")
    assert len(PLAYS_1994) == 36 and CLIENTS_1994 == 1117
    assert check_complete_works(shared.read_bytes().decode("utf-8-sig")) is None
    assert check_complete_works(MINI_WORKS.decode("utf-8-sig")) == (
        "its parse gives 2 plays and 4 clients, expected 36 and 1,117 (missing 34: ALLS WELL "
        "THAT ENDS WELL, THE TRAGEDY OF ANTONY AND CLEOPATRA, THE TRAGEDY OF CORIOLANUS, ...)"
    )
    assert check_complete_works("no plays here") == (
        "has no plays: expected Shakespeare's complete works, each play starting at a 'by "
        "William Shakespeare' line below its title, with character lines '  NAME. text'"
    )


def test_the_data_source_is_used_first_then_the_fetched_copy_then_the_address(
    cache, tmp_path, text_server
):
    text_server.files["/100.txt"] = MINI_WORKS
    url = f"{text_server.url}/100.txt"
    shared = tmp_path / "data" / SHAKESPEARE.relative
    lines = []

    with pytest.raises(DataError) as error:
        complete_works_path(shared, None, log=lines.append)
    target = fetched_path(SHAKESPEARE.relative)
    assert str(error.value) == (
        f"data.source='{shared}' does not exist and data.source_url is null: expected the 1994 "
        f"Project Gutenberg Complete Works of Shakespeare at data.source or at {target}, or "
        "data.source_url set to its address (conf/data/shakespeare.yaml names Gutenberg's) to "
        "fetch it from"
    )
    target.parent.mkdir(parents=True)
    target.write_bytes(MINI_WORKS)  # put there by hand: used as it is
    assert complete_works_path(shared, None, log=lines.append) == target
    target.unlink()
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"anything")
    assert complete_works_path(shared, url, log=lines.append) == shared
    assert lines == [] and text_server.ranges == []
    shared.unlink()

    # The real check refuses the miniature: a fetch of it fails with the 1994 edition's figures.
    with pytest.raises(DataError, match="expected 36 and 1,117"):
        complete_works_path(shared, url, log=lines.append)
    assert lines == [
        f"data.source='{shared}' is not here: fetching the 1994 Project Gutenberg Complete Works "
        f"of Shakespeare into {target}"
    ]


CAROL = (
    "The Project Gutenberg eBook of A Christmas Carol, by Charles Dickens\n\n"
    "Title: A Christmas Carol\n\n*** START OF THE PROJECT GUTENBERG EBOOK A CHRISTMAS CAROL ***\n"
    + "Marley was dead: to begin with.\n" * 4500
    + "*** END OF THE PROJECT GUTENBERG EBOOK A CHRISTMAS CAROL ***\n"
)


def test_the_dickens_books_are_checked_for_their_title_and_length():
    carol = BOOKS["dickens/a_christmas_carol.txt"].check
    assert carol(CAROL) is None  # 144,000 characters of book
    assert carol(CAROL[:60_000]) == ("it has 59,841 characters of text, expected at least 140,000")
    assert carol(re.sub("christmas carol", "Tale of Two Cities", CAROL, flags=re.IGNORECASE)) == (
        "its first 20,000 characters do not name 'A Christmas Carol'"
    )
    assert BOOKS["dickens/a_tale_of_two_cities.txt"].check(CAROL) == (
        "its first 20,000 characters do not name 'A Tale of Two Cities'"
    )
    assert check_book("", None) == "it has 0 characters of text, expected at least 1"


def test_corpus_files_fetch_what_is_not_at_hand(cache, tmp_path, text_server):
    text_server.files["/pg46.txt"] = CAROL.encode()
    text_server.files["/short.txt"] = CAROL[:60_000].encode()
    (tmp_path / "data/dickens").mkdir(parents=True)
    tale = tmp_path / "data/dickens/a_tale_of_two_cities.txt"
    tale.write_text("It was the best of times.")
    entries = ["dickens/a_tale_of_two_cities.txt", "dickens/a_christmas_carol.txt"]
    urls = {"a_tale_of_two_cities": "http://unused", "a_christmas_carol": ""}
    lines = []

    with pytest.raises(DataError) as error:
        corpus_files(entries, {**urls, "a_christmas_carol": f"{text_server.url}/short.txt"})
    target = cache / "texts/dickens/a_christmas_carol.txt"
    assert str(error.value) == (
        f"corpus_urls.a_christmas_carol='{text_server.url}/short.txt' did not give A Christmas "
        "Carol (Project Gutenberg #46): it has 59,841 characters of text, expected at least "
        f"140,000 (60,000 bytes arrived); download it yourself and put the text at {target}, or "
        "set corpus_urls.a_christmas_carol to a mirror"
    )

    urls["a_christmas_carol"] = f"{text_server.url}/pg46.txt"
    files = corpus_files(entries, urls, lines.append)

    assert files == [tale, target]  # the one at hand is read where it is
    assert target.read_text() == CAROL
    assert lines[0] == (
        f"corpus file {tmp_path}/data/dickens/a_christmas_carol.txt is not here: fetching A "
        f"Christmas Carol (Project Gutenberg #46) into {target}"
    )
    assert lines[1].startswith(f"fetched {target} (0.1 MB, ")
    assert corpus_files(entries, {}, lines.append) == [tale, target]  # no address needed now
    missing = tmp_path / "data/other.txt"
    assert corpus_files(["other.txt"], urls, lines.append) == [missing]  # load_corpus reports it
    assert len(lines) == 2


def test_corpus_urls_are_http_addresses():
    with pytest.raises(ConfigError) as error:
        corpus_files(["a.txt"], {"a": "ftp://x/a.txt"})
    assert str(error.value) == (
        "corpus_urls.a='ftp://x/a.txt' is not allowed: expected an http:// or https:// address, "
        "or null"
    )
