"""``fedlm-train``: a Hydra config in, one federated training run out."""

from __future__ import annotations

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fedlm.cli.common import CONFIG_DIR, quiet_libraries, register_resolvers, report_errors
from fedlm.config import TrainConfig

register_resolvers()
ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def run_context() -> dict[str, str]:
    """What Hydra knows about this job that a tracker should record."""
    hydra_cfg = HydraConfig.get()
    return {
        "hydra.mode": str(hydra_cfg.mode.name if hydra_cfg.mode else "RUN"),
        "hydra.output_dir": hydra_cfg.runtime.output_dir,
        "hydra.sweep_dir": hydra_cfg.sweep.dir,
        "hydra.job_num": str(hydra_cfg.job.get("num", 0)),
        "hydra.overrides": " ".join(hydra_cfg.overrides.task),
        "hydra.choices": OmegaConf.to_yaml(hydra_cfg.runtime.choices),
    }


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@report_errors("fedlm-train")
def _main(cfg: DictConfig) -> float | None:
    # Heavy imports here, after Hydra has parsed the command line (so --help is fast).
    from fedlm.experiment import run
    from fedlm.federated.workers import install_signal_handlers
    from fedlm.tracking import build_tracker

    quiet_libraries()
    install_signal_handlers()
    train_cfg: TrainConfig = OmegaConf.to_object(cfg)
    tracker = build_tracker(train_cfg, run_context())
    result = run(train_cfg, tracker)
    where = tracker.where()
    if where:
        print(where)
    last = result.history[-1] if result.history else {}
    return last.get("eval/accuracy")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
