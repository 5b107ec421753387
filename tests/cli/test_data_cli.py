import contextlib
import sqlite3

import pytest

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
