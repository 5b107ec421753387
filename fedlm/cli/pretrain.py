"""``uv run fedlm-pretrain``: central pre-training of a character model (conf/pretrain.yaml)."""

from __future__ import annotations

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from fedlm.cli.common import CONFIG_DIR, register_resolvers, report_errors, run_hydra
from fedlm.config import PretrainConfig, check_keys
from fedlm.data.fetch import corpus_files

register_resolvers()
ConfigStore.instance().store(name="pretrain_schema", node=PretrainConfig)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pretrain")
@report_errors("fedlm-pretrain")
def _main(cfg: DictConfig) -> None:
    check_keys(OmegaConf.to_container(cfg, resolve=False), PretrainConfig)  # `+key=` included
    pretrain_cfg = OmegaConf.to_object(cfg)
    corpus_files(pretrain_cfg.corpus, pretrain_cfg.corpus_urls)  # fetched now, before TensorFlow
    from fedlm.pretraining import pretrain  # TensorFlow loads after the config is checked

    result = pretrain(pretrain_cfg)
    for key, value in result.metrics.items():
        print(f"{key}: {value:.4f}")
    print(f"shakespeare test data: {result.shakespeare_source}")
    print(f"time: {result.wall_seconds:.0f} s wall, {result.cpu_seconds:.0f} s CPU")
    print(f"saved: {result.path}")


def main() -> None:
    run_hydra("fedlm-pretrain", _main)


if __name__ == "__main__":
    main()
