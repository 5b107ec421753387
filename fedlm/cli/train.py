"""``fedlm-train``: a Hydra config in, one federated training run out.

Everything that can be checked without TensorFlow is checked first, in about a second: the keys
on the command line and in the composed config against the typed config (``+key=...`` included),
every value, and the training clients that the data has at this ``seq_len`` and batch size; then
the MLflow run is found and taken for this process (a run has one writer). Only then are
TensorFlow and TFF imported (10-20 s).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from fedlm.cli import callbacks
from fedlm.cli.common import (
    CONFIG_DIR,
    quiet_libraries,
    register_resolvers,
    report_errors,
    run_hydra,
)
from fedlm.cli.hydra_compat import hydra_args_parser
from fedlm.cli.joblog import job_log, job_prefix
from fedlm.config import TrainConfig, check_key, check_keys
from fedlm.tracking.run_info import override_list, overrides_of, resume_command

PROG = "fedlm-train"
register_resolvers()
ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def config_groups() -> list[str]:
    """The config groups a command line may pick from (``data=synthetic``, ``+experiment=...``)."""
    return sorted(p.name for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and p.name != "hydra")


def check_command_line(argv: list[str]) -> None:
    """Refuse an override of a key the typed config does not have, with or without ``+``, before
    Hydra composes anything (Hydra's own error suggests adding ``+``, which it then accepts)."""
    parser = hydra_args_parser()  # the parser hydra.main itself uses
    try:
        args, _ = parser.parse_known_args(argv)
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except (SystemExit, Exception):  # a malformed command line: Hydra reports it
        return
    groups = config_groups()
    for override in parsed:
        key = override.key_or_group
        if override.package is not None or key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if "/" in key or (Path(CONFIG_DIR) / key).is_dir():
            continue  # a config group's option (data=synthetic); Hydra checks that it exists
        check_key(key, TrainConfig, groups)


def typed_config(cfg: DictConfig) -> TrainConfig:
    """The composed config as the typed ``TrainConfig``, every key and value checked."""
    from fedlm.checks import validate

    check_keys(OmegaConf.to_container(cfg, resolve=False), TrainConfig)
    train_cfg: TrainConfig = OmegaConf.to_object(cfg)
    validate(train_cfg)
    return train_cfg


def run_context() -> dict[str, str]:
    """What Hydra knows about this job that a tracker should record."""
    hydra_cfg = HydraConfig.get()
    return {
        "hydra.mode": str(hydra_cfg.mode.name if hydra_cfg.mode else "RUN"),
        "hydra.output_dir": hydra_cfg.runtime.output_dir,
        "hydra.sweep_dir": hydra_cfg.sweep.dir,
        "hydra.job_num": str(hydra_cfg.job.get("num", 0)),
        "hydra.overrides": shlex.join(hydra_cfg.overrides.task),
        "hydra.choices": OmegaConf.to_yaml(hydra_cfg.runtime.choices),
    }


@report_errors(PROG)
def train(cfg: DictConfig, context: dict[str, str]) -> float | None:
    train_cfg = typed_config(cfg)
    from fedlm.checks import check_data  # no TensorFlow yet

    check_data(train_cfg)
    output_dir = Path(context["hydra.output_dir"])
    print(f"output folder: {output_dir} (checkpoints, train.log)")
    from fedlm.tracking import build_tracker  # MLflow, no TensorFlow yet

    quiet_libraries()
    tracker = build_tracker(train_cfg, context)
    # The run taken for this process (one writer per run) before 10-60 s of setup, which a
    # resume of a finished run does not need.
    if not tracker.claim():
        return None
    # TensorFlow and TFF only now that the config is known to be good.
    from fedlm.cli.signals import install_signal_handlers
    from fedlm.experiment import run

    install_signal_handlers()  # in this job's process (joblib runs jobs in worker processes)
    try:
        result = run(train_cfg, tracker)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM/SIGHUP (install_signal_handlers)
        if tracker.run_id is not None:
            command = resume_command(override_list(context), tracker.run_id)
            print(f"stopped: continue with\n  {command}", file=sys.stderr)
        raise
    finally:
        print(f"output folder: {output_dir}")
    where = tracker.where()
    if where:
        print(where)
    last = result.history[-1] if result.history else {}
    return last.get("eval/accuracy")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _main(cfg: DictConfig) -> float | None:
    context = run_context()
    prefix = ""
    if context["hydra.mode"] == "MULTIRUN":
        prefix = job_prefix(overrides_of(context))
    log = Path(context["hydra.output_dir"]) / f"{HydraConfig.get().job.name}.log"
    with job_log(log, prefix):
        return train(cfg, context)


@report_errors(PROG)
def main() -> None:
    from fedlm.cli.signals import install_signal_handlers  # no TensorFlow

    check_command_line(sys.argv[1:])
    install_signal_handlers()
    try:
        run_hydra(PROG, _main)
    finally:
        callbacks.end_unfinished_sweeps()


if __name__ == "__main__":
    main()
