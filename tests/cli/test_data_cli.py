import contextlib
import io
import sqlite3
import zipfile

import pytest

from fedlm import paths
from fedlm.cli.data import main
from fedlm.data.shakespeare_text import PARSER_VERSION

TINY_WORKS = """A TINY PLAY

by William Shakespeare

  ANNE. One, two, three, four, five.
  BEN. Two.
  ANNE. Three.
  BEN. Four|
  CAT. Alone.
"""


def _error_of(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.fixture
def built(tmp_path, capsys):
    source = tmp_path / "works.txt"
    source.write_text(TINY_WORKS)
    cache_dir = tmp_path / "cache"
    assert main(["build", "--source", str(source), "--cache-dir", str(cache_dir)]) == 0
    return source, cache_dir, capsys.readouterr().out


def test_build_prints_the_counts(built):
    source, cache_dir, out = built

    lines = out.splitlines()
    assert lines[:2] == ["writing split 'train': 2 clients", "writing split 'test': 2 clients"]
    assert lines[2].startswith(f"built {cache_dir}/shakespeare.sqlite from {source} in ")
    assert lines[3:] == [
        "plays: 1",
        "clients: 2 (1 dropped with fewer than 2 examples)",
        "examples: 2 train, 2 test",
        "discarded lines: 0",
        "unknown characters: 1 ('|': 1)",
        f"stamp: built by fedlm's parser version {PARSER_VERSION} from {source.resolve()}",
    ]


def test_build_of_a_current_build_says_so_and_a_different_one_needs_force(built, capsys):
    source, cache_dir, _ = built
    argv = ["build", "--source", str(source), "--cache-dir", str(cache_dir)]

    assert main(argv) == 0
    assert capsys.readouterr().out == (
        f"{cache_dir}/shakespeare.sqlite is already built from {source} with these options "
        f"(built by fedlm's parser version {PARSER_VERSION} from {source.resolve()}): nothing to "
        "do (--force rebuilds it)\n"
    )
    assert _error_of(capsys, [*argv, "--test-fraction", "0.5"]) == (
        f"fedlm-data: error: {cache_dir}/shakespeare.sqlite already exists and was built with "
        "test fraction 0.2: expected --force to rebuild it"
    )
    assert main([*argv, "--force", "--test-fraction", "0.5"]) == 0


def test_stats_prints_the_counts(built, capsys):
    source, cache_dir, _ = built

    assert (
        main(["stats", "--cache-dir", str(cache_dir), "--seq-len", "4", "--batch-size", "2"]) == 0
    )
    assert capsys.readouterr().out.splitlines()[:7] == [
        "clients: 2",
        "train: 2 clients, 2 examples",
        "  characters per client: min 4, median 16, max 28",
        "  empty clients (zero batches): 1 of 2",
        "test: 2 clients, 2 examples",
        "  characters per client: min 5, median 5.5, max 6",
        "  empty clients (zero batches): 2 of 2",
    ]
    assert main(["stats", "--cache-dir", str(cache_dir), "--split", "test", "--pad"]) == 0
    out = capsys.readouterr().out
    assert "empty clients (zero batches): 0 of 2" in out and "train:" not in out
    assert out.splitlines()[-1] == (
        f"stamp: built by fedlm's parser version {PARSER_VERSION} from {source.resolve()}"
    )


def test_stats_says_when_an_older_parser_built_the_database(built, capsys):
    _, cache_dir, _ = built
    with contextlib.closing(sqlite3.connect(cache_dir / "shakespeare.sqlite")) as con:
        con.execute("UPDATE fedlm_build SET value = '1' WHERE key = 'parser_version'")
        con.commit()

    assert main(["stats", "--cache-dir", str(cache_dir)]) == 0

    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .endswith(
            f"(stale: it was built by fedlm's parser version 1, this fedlm's is {PARSER_VERSION}; "
            "rebuild it)"
        )
    )


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["stats", "--seq-len", "0"], "argument --seq-len: 0 is not allowed: expected an integer"),
        (["stats", "--batch-size", "x"], "argument --batch-size: 'x' is not an integer"),
        (["stats", "--split", "dev"], "argument --split: invalid choice: 'dev'"),
        (["build", "--test-fraction", "1"], "argument --test-fraction: 1.0 is not allowed"),
        (["build", "--min-examples", "1"], "argument --min-examples: 1 is not allowed"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, argv, error):
    assert error in _error_of(capsys, argv)


def test_a_missing_database_or_source_is_a_one_line_error(tmp_path, capsys):
    line = _error_of(capsys, ["stats", "--cache-dir", str(tmp_path / "nowhere")])
    assert line == (
        f"fedlm-data: error: {tmp_path}/nowhere/shakespeare.sqlite does not exist: expected a "
        "federated Shakespeare database (`fedlm-data build`)"
    )
    argv = ["build", "--source", str(tmp_path / "gone.txt"), "--cache-dir", str(tmp_path)]
    assert _error_of(capsys, argv).startswith(
        f"fedlm-data: error: cannot read text file {tmp_path}/gone.txt"
    )


def test_the_paper_pipeline_takes_no_padding(built, capsys):
    _, cache_dir, _ = built

    line = _error_of(
        capsys, ["stats", "--cache-dir", str(cache_dir), "--pipeline", "paper", "--pad"]
    )
    assert line.startswith("fedlm-data: error: data.pad=True is not allowed")


SHARED_TEXT = paths.shared_data_dir() / "shakespeare" / "complete_works_gutenberg100_1994.txt"
# Stand-ins for Gutenberg's plain texts of the Dickens books: the title in the header, and enough
# text for fedlm's minimum lengths (680,000 and 140,000 characters).
TALE = "Title: A Tale of Two Cities\n\n" + "It was the best of times, it was the worst.\n" * 16_000
CAROL = "Title: A Christmas Carol\n\n" + "Marley was dead: to begin with.\n" * 4_500


@pytest.fixture
def empty_dirs(tmp_path, monkeypatch):
    """FEDLM_DATA_DIR and FEDLM_CACHE_DIR, both empty: a machine without ../shared/data."""
    monkeypatch.setenv("FEDLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEDLM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "data", tmp_path / "cache" / "texts"


def _fetch_argv(url):
    return [
        "fetch",
        f"data.source_url={url}/1994-01-100.zip",
        f"corpus_urls.a_tale_of_two_cities={url}/pg98.txt",
        f"corpus_urls.a_christmas_carol={url}/pg46.txt",
    ]


def _zip(name, data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.skipif(not SHARED_TEXT.exists(), reason=f"shared corpus missing: {SHARED_TEXT}")
def test_fetch_downloads_and_checks_every_text_that_is_not_at_hand(empty_dirs, text_server, capsys):
    _, texts = empty_dirs
    works = SHARED_TEXT.read_bytes()
    text_server.files["/1994-01-100.zip"] = _zip("100.txt", works)
    text_server.files["/pg98.txt"] = TALE.encode()
    text_server.files["/pg46.txt"] = CAROL.encode()

    assert main(_fetch_argv(text_server.url)) == 0

    shakespeare = texts / "shakespeare/complete_works_gutenberg100_1994.txt"
    tale, carol = (
        texts / "dickens/a_tale_of_two_cities.txt",
        texts / "dickens/a_christmas_carol.txt",
    )
    assert shakespeare.read_bytes() == works and tale.read_text() == TALE
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3:] == [f"at hand: {shakespeare}", f"at hand: {tale}", f"at hand: {carol}"]
    assert [line.split(" (")[0] for line in lines if line.startswith("fetched")] == [
        f"fetched {shakespeare}",
        f"fetched {tale}",
        f"fetched {carol}",
    ]
    # Everything at hand now: a second fetch asks the server for nothing.
    requests = len(text_server.ranges)
    assert main(_fetch_argv(text_server.url)) == 0
    assert len(text_server.ranges) == requests


def test_fetch_refuses_a_text_that_is_not_the_1994_edition(empty_dirs, text_server, capsys):
    _, texts = empty_dirs
    text_server.files["/1994-01-100.zip"] = _zip("100.txt", TINY_WORKS)
    url = f"{text_server.url}/1994-01-100.zip"
    target = texts / "shakespeare/complete_works_gutenberg100_1994.txt"

    assert _error_of(capsys, _fetch_argv(text_server.url)) == (
        f"fedlm-data: error: data.source_url='{url}' did not give the 1994 Project Gutenberg "
        "Complete Works of Shakespeare: its parse gives 1 plays and 2 clients, expected 36 and "
        "1,117 (missing 36: ALLS WELL THAT ENDS WELL, THE TRAGEDY OF ANTONY AND CLEOPATRA, AS "
        f"YOU LIKE IT, ...) ({len(_zip('100.txt', TINY_WORKS))} bytes arrived); download it "
        f"yourself and put the text (unzipped) at {target}, or set data.source_url to a mirror"
    )
    assert list(target.parent.iterdir()) == []


def test_fetch_offline_is_one_line_and_leaves_nothing(empty_dirs, closed_port_url, capsys):
    _, texts = empty_dirs
    url = f"{closed_port_url}/1994-01-100.zip"

    assert _error_of(capsys, _fetch_argv(closed_port_url)) == (
        "fedlm-data: error: cannot fetch the 1994 Project Gutenberg Complete Works of Shakespeare "
        f"from data.source_url='{url}' (ConnectionRefusedError: [Errno 111] Connection refused): "
        f"download it yourself and put the text (unzipped) at "
        f"{texts}/shakespeare/complete_works_gutenberg100_1994.txt, or set data.source_url to a "
        "mirror"
    )
    assert [p.name for p in texts.rglob("*") if p.is_file()] == []


def test_fetch_reads_what_the_data_directory_has_and_downloads_nothing(
    empty_dirs, closed_port_url, capsys
):
    data, _ = empty_dirs
    for relative in (
        "shakespeare/complete_works_gutenberg100_1994.txt",
        "dickens/a_tale_of_two_cities.txt",
        "dickens/a_christmas_carol.txt",
    ):
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text("at hand")

    assert main(_fetch_argv(closed_port_url)) == 0

    assert capsys.readouterr().out.splitlines() == [
        f"at hand: {data}/shakespeare/complete_works_gutenberg100_1994.txt",
        f"at hand: {data}/dickens/a_tale_of_two_cities.txt",
        f"at hand: {data}/dickens/a_christmas_carol.txt",
    ]


def test_fetch_refuses_a_bad_override_in_one_line(empty_dirs, capsys):
    assert _error_of(capsys, ["fetch", "data.source_url=ftp://x/100.zip"]) == (
        "fedlm-data: error: data.source_url='ftp://x/100.zip' is not allowed: expected an "
        "http:// or https:// address, or null"
    )
    assert _error_of(capsys, ["fetch", "data.sorce_url=x"]).startswith(
        "fedlm-data: error: Could not override 'data.sorce_url'."
    )


def test_build_without_a_text_at_hand_says_to_fetch_it(empty_dirs, tmp_path, capsys):
    data, _ = empty_dirs
    assert _error_of(capsys, ["build", "--cache-dir", str(tmp_path / "db")]) == (
        f"fedlm-data: error: {data}/shakespeare/complete_works_gutenberg100_1994.txt does not "
        "exist: fetch the 1994 text first (`uv run fedlm-data fetch`), or give its path with "
        "--source"
    )
