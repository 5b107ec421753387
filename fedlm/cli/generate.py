"""``uv run fedlm-generate``: sample text from a saved model (conf/generate.yaml)."""

from __future__ import annotations

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from fedlm.cli.common import CONFIG_DIR, register_resolvers, report_errors
from fedlm.config import GenerateConfig

register_resolvers()
ConfigStore.instance().store(name="generate_schema", node=GenerateConfig)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="generate")
@report_errors("fedlm-generate")
def main(cfg: DictConfig) -> None:
    from fedlm.models.generate import (
        check_prompt,
        check_sampling,
        generate_text,
        load_weights_for_generation,
    )

    cfg: GenerateConfig = OmegaConf.to_object(cfg)
    check_prompt(cfg.prompt)  # before loading anything
    check_sampling(cfg.length, cfg.temperature, cfg.top_k)
    weights = load_weights_for_generation(cfg.model.pretrained, cfg.model, cfg.vocab_size)
    vocab_size = cfg.vocab_size or int(weights[0].shape[0])
    print(
        generate_text(
            weights,
            cfg.model,
            vocab_size,
            cfg.prompt,
            cfg.length,
            cfg.temperature,
            cfg.top_k,
            cfg.seed,
        )
    )


if __name__ == "__main__":
    main()
