"""``fedlm-carry``: pack unfinished runs into folders that can be committed and resumed anywhere.

    uv run fedlm-carry RUN_ID [RUN_ID ...] --to DIR [--tracking-uri URI]
    uv run fedlm-carry --unfinished-of EXPERIMENT --to DIR [--tracking-uri URI]

Each run goes to ``DIR/<run id>/``: its newest checkpoint, every metric point it logged, its
params, tags and config (fedlm/tracking/carry.py). ``--unfinished-of`` packs every run of the
experiment that has not finished and whose checkpoints are on this machine. The line printed for
each run is the command that continues it on any machine with the pack folder (a commit away):
``fedlm-train <its overrides> resume=DIR/<run id>``.
"""

from __future__ import annotations

import argparse
import sys

from fedlm.cli.common import report_errors

PROG = "fedlm-carry"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Pack unfinished runs (newest checkpoint, metrics, params, tags) into "
        "folders that resume=FOLDER continues on another machine.",
    )
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="MLflow run ids to pack")
    p.add_argument(
        "--unfinished-of",
        metavar="EXPERIMENT",
        help="pack every unfinished run of this experiment whose checkpoints are on this machine",
    )
    p.add_argument("--to", required=True, metavar="DIR", help="the folder the packs go into")
    p.add_argument("--tracking-uri", help="the MLflow store (default: fedlm's default store)")
    return p


@report_errors(PROG)
def run(args: argparse.Namespace) -> None:
    from fedlm.errors import ConfigError
    from fedlm.tracking import carry, run_info, store
    from fedlm.tracking.runs import COMMAND_LINE_TAG

    if bool(args.run_ids) == bool(args.unfinished_of):
        raise ConfigError(
            "RUN_ID / --unfinished-of",
            " ".join(args.run_ids) or args.unfinished_of,
            "either run ids or --unfinished-of EXPERIMENT, not both and not neither",
        )
    uri = store.resolve_uri(args.tracking_uri)
    client = store.connect(uri)
    run_ids = args.run_ids or carry.unfinished_runs(client, args.unfinished_of, uri)
    if not run_ids:
        print(f"{PROG}: no unfinished run of {args.unfinished_of!r} has checkpoints here")
        return
    for run_id in run_ids:
        folder = carry.pack(client, run_id, args.to)
        record = carry.read_pack(folder, folder)
        overrides = run_info.override_list(
            {"hydra.overrides": record["tags"].get(COMMAND_LINE_TAG)}
        )
        print(
            f"packed run {run_id} at round {record['round']} into {folder}; continue it with:\n"
            f"  {run_info.resume_command(overrides, str(folder))}"
        )


def main(argv: list[str] | None = None) -> None:
    run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
