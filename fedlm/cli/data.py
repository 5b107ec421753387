"""``fedlm-data``: fetch the texts, build the federated Shakespeare dataset, count what is in it.

    uv run fedlm-data fetch [data.source_url=URL] [corpus_urls.a_christmas_carol=URL] [...]
    uv run fedlm-data build [--source FILE] [--cache-dir DIR] [--force]
    uv run fedlm-data stats [--cache-dir DIR] [--split train|test] [--seq-len 100]
                            [--batch-size 8] [--pad] [--unknown-chars POLICY] [--pipeline tutorial]

Plain argparse (a few commands with a few flags); ``fetch`` composes the shipped configs with
Hydra, so it fetches from the addresses that ``fedlm-train`` (``data.source_url``) and
``fedlm-pretrain`` (``corpus_urls``) would, with the same overrides. TensorFlow is imported only
once the arguments are known to be good, so ``--help`` and bad flags answer at once.
"""

from __future__ import annotations

import argparse
import sys
import time

from fedlm.cli.common import report_errors
from fedlm.data.pipelines import PIPELINES
from fedlm.errors import DataError, FedlmError
from fedlm.vocab import UNKNOWN_POLICIES

PROG = "fedlm-data"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: expected an integer >= 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: expected a number in [0, 1)")
    return value


def _min_examples(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"{value} is not allowed: expected an integer >= 2 (one train and one test example)"
        )
    return value


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


@report_errors(PROG)
def fetch(args: argparse.Namespace) -> int:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from fedlm.cli import pretrain, train  # noqa: F401 (their schemas, in Hydra's ConfigStore)
    from fedlm.cli.common import CONFIG_DIR
    from fedlm.config import check_url
    from fedlm.data.clients import data_source
    from fedlm.data.fetch import complete_works_path, corpus_files

    corpus = [o for o in args.overrides if _override_key(o).startswith("corpus")]
    others = [o for o in args.overrides if o not in corpus]
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            data = OmegaConf.to_object(compose("train", others).data)
            pretrain_cfg = OmegaConf.to_object(compose("pretrain", corpus))
    except (HydraException, OmegaConfBaseException) as e:
        raise FedlmError(" ".join(str(e).split())) from e
    check_url("data.source_url", data.source_url)
    texts = []
    if data_source(data.name).in_cache_dir and data.source is not None:
        texts.append(complete_works_path(data.source, data.source_url))
    texts += corpus_files(pretrain_cfg.corpus, pretrain_cfg.corpus_urls)
    missing = [str(path) for path in texts if not path.exists()]
    if missing:
        raise DataError(
            f"{', '.join(missing)} not found, and corpus_urls gives no address to fetch it from: "
            "put the book there, or set corpus_urls.<its name>"
        )
    for path in texts:
        print(f"at hand: {path}")
    return 0


@report_errors(PROG)
def build(args: argparse.Namespace) -> int:
    from fedlm.cli.signals import install_signal_handlers
    from fedlm.data.build import (
        build_difference,
        build_shakespeare,
        check_cache_dir,
        database_path,
        describe_build,
    )
    from fedlm.data.clients import default_cache_dir, default_source
    from fedlm.errors import DataError

    install_signal_handlers()  # SIGTERM and SIGHUP clean up the temporary files, as Ctrl-C does

    source = args.source or default_source()
    if not args.source and not source.is_file():
        raise DataError(
            f"{source} does not exist: fetch the 1994 text first (`uv run fedlm-data fetch`), "
            "or give its path with --source"
        )
    cache_dir = args.cache_dir or default_cache_dir()
    database = database_path(check_cache_dir(cache_dir))
    if database.exists() and not args.force:
        different = build_difference(database, source, args.test_fraction, args.min_examples)
        if different is None:
            print(
                f"{database} is already built from {source} with these options "
                f"({describe_build(database)}): nothing to do (--force rebuilds it)"
            )
            return 0
        raise DataError(
            f"{database} already exists and {different}: expected --force to rebuild it"
        )
    start = time.perf_counter()
    clients = build_shakespeare(
        source, cache_dir, args.force, args.test_fraction, args.min_examples, log=print
    )
    unknown = sum(clients.unknown_chars.values())
    common = ", ".join(f"{c!r}: {n}" for c, n in clients.unknown_chars.most_common(10))
    print(
        f"built {database_path(cache_dir)} from {source} in {time.perf_counter() - start:.1f} s\n"
        f"plays: {len(clients.plays)}\n"
        f"clients: {len(clients.train)} ({clients.dropped_clients} dropped with fewer than "
        f"{args.min_examples} examples)\n"
        f"examples: {clients.num_train_examples} train, {clients.num_test_examples} test\n"
        f"discarded lines: {clients.discarded_lines}\n"
        f"unknown characters: {unknown}" + (f" ({common})" if unknown else "") + "\n"
        f"stamp: {describe_build(database_path(cache_dir))}"
    )
    return 0


@report_errors(PROG)
def stats(args: argparse.Namespace) -> int:
    from fedlm.data.build import database_path, describe_build, stale_reason
    from fedlm.data.clients import SPLITS, default_cache_dir, default_source, read_snippets
    from fedlm.data.pipelines import build_pipeline
    from fedlm.data.shakespeare_text import PARSER_VERSION
    from fedlm.data.stats import dataset_stats, format_stats

    pipeline = build_pipeline(
        args.pipeline,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        unknown_chars=args.unknown_chars,
        pad=args.pad,
    )
    cache_dir = args.cache_dir or default_cache_dir()
    splits = [args.split] if args.split else list(SPLITS)
    snippets = {split: read_snippets(cache_dir, split) for split in splits}
    print(format_stats(dataset_stats(snippets, pipeline)))
    database = database_path(cache_dir)
    stale = stale_reason(database, default_source())
    print(
        f"stamp: {describe_build(database)}"
        + (f" (stale: it {stale}, this fedlm's is {PARSER_VERSION}; rebuild it)" if stale else "")
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cache_help = "directory of shakespeare.sqlite (default: ~/.cache/fedlm/shakespeare)"

    p = commands.add_parser(
        "fetch",
        help="download the texts that are not at hand (Shakespeare, the Dickens books)",
        description="Download into FEDLM_CACHE_DIR/texts/ each text that fedlm-train and "
        "fedlm-pretrain read and that is not at hand (in FEDLM_DATA_DIR, default ../shared/data, "
        "or fetched before), from the configured addresses, and check it.",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="overrides of fedlm-train's config (data.source_url=URL) and fedlm-pretrain's "
        "(corpus_urls.a_christmas_carol=URL)",
    )
    p.set_defaults(func=fetch)

    p = commands.add_parser("build", help="parse the Gutenberg text into shakespeare.sqlite")
    p.add_argument("--source", help="the complete works (default: the shared 1994 text)")
    p.add_argument("--cache-dir", help=cache_help)
    p.add_argument("--force", action="store_true", help="replace an existing database")
    p.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.2,
        help="share of each client's examples held out for test (default: 0.2)",
    )
    p.add_argument(
        "--min-examples",
        type=_min_examples,
        default=2,
        help="drop characters with fewer examples (default: 2)",
    )
    p.set_defaults(func=build)

    p = commands.add_parser("stats", help="count clients, examples, characters, empty clients")
    p.add_argument("--cache-dir", help=cache_help)
    p.add_argument("--split", choices=["train", "test"], help="one split (default: both)")
    p.add_argument("--pipeline", choices=PIPELINES, default="tutorial")
    p.add_argument("--seq-len", type=_positive_int, default=100)
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument(
        "--pad",
        action="store_true",
        help="tutorial pipeline: pad each client's last sequence and batch",
    )
    p.add_argument(
        "--unknown-chars",
        choices=UNKNOWN_POLICIES,
        default=None,
        help="default: the pipeline's own (tutorial: drop, paper: oov)",
    )
    p.set_defaults(func=stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
