"""What ``fedlm-train`` checks before it imports TensorFlow, so that a bad config is reported in
about a second instead of after 10-20 s of imports (or minutes into a run).

:func:`fedlm.config.validate` checks every value on its own; :func:`check_data` checks them
against the files and the data: a ``model.pretrained`` path, the pipeline's options,
``data.cache_dir`` and ``data.source`` (fetched from ``data.source_url`` when it is not at hand and
the database is not built yet), and, when the federated Shakespeare database is already built, that
enough training clients have a full batch at this ``seq_len`` and batch size for the sampler
(``training.clients_per_round``, ``sampler.client_ids``). :func:`fedlm.experiment.run` checks the
same things again where it uses them, so a library caller is never without them.
"""

from __future__ import annotations

from pathlib import Path

from fedlm import paths
from fedlm.config import ModelConfig, TrainConfig
from fedlm.data import pipelines
from fedlm.data.build import check_cache_dir, database_path
from fedlm.data.clients import read_snippets
from fedlm.data.fetch import complete_works_path
from fedlm.data.sizes import BatchCounter, eligible_clients
from fedlm.errors import ModelError
from fedlm.federated.samplers import build_sampler


def check_pretrained(model: ModelConfig, pipeline: str = "tutorial") -> None:
    """Raise :class:`ModelError` for a ``model.pretrained`` path that is not there (``none``,
    ``dickens`` and URLs are looked up when the run loads the weights). A path where
    ``fedlm-pretrain`` saves (fedlm's cache) names the command that makes it."""
    spec = str(model.pretrained or "").strip()
    if spec.lower() in ("", "none", "null", "dickens") or spec.startswith(("http://", "https://")):
        return
    path = Path(spec).expanduser()
    if path.exists():
        return
    if path.parent == paths.cache_dir() / "pretrained":
        pipeline_arg = " pipeline=paper seq_len=80" if pipeline == "paper" else ""
        raise ModelError(
            f"model.pretrained={spec!r}: this run starts from a model pre-trained on the Dickens "
            f"books, and there is none yet: make it with `uv run fedlm-pretrain "
            f"model={model.name}{pipeline_arg}` (the study's README gives its settings and time), "
            "or set model.pretrained=none to start from random weights"
        )
    raise ModelError(
        f"model.pretrained={spec!r}: no such file or directory ({path}); expected none, "
        "dickens, an http(s) URL or the path of a saved Keras model"
    )


def check_data(cfg: TrainConfig) -> None:
    """Raise :class:`fedlm.errors.ConfigError` or :class:`fedlm.errors.DataError` for what in
    ``cfg`` does not fit the data; pure Python (sqlite3), about a second for the full dataset."""
    data, t = cfg.data, cfg.training
    check_pretrained(cfg.model, data.pipeline)
    pipelines.check_options(data.pipeline, data.unknown_chars, data.pad, data.loss_on_padding)
    if data.name != "shakespeare":
        return  # TFF's synthetic data: three clients, checked when the run loads them
    database = database_path(check_cache_dir(data.cache_dir))
    if not database.is_file():
        if data.source is not None:
            # Fetched now if it is not at hand (pure Python): a failed download is one line
            # before TensorFlow is imported, and a missing text with no address is refused.
            complete_works_path(data.source, data.source_url)
        return  # built (or downloaded by TFF) when the run starts, and checked then
    snippets = read_snippets(data.cache_dir, "train")
    counter = BatchCounter(data.pipeline, t.seq_len, t.batch_size, data.unknown_chars, data.pad)
    build_sampler(
        cfg.sampler.name,
        eligible_clients(counter, snippets),
        t.clients_per_round,
        cfg.seed,
        fixed_client_ids=cfg.sampler.client_ids,
        all_client_ids=list(snippets),
    )
