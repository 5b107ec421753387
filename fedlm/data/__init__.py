"""fedlm's data: federated Shakespeare (built, loaded, sized), per-client pipelines, corpora."""

from fedlm.data.build import DATABASE_NAME, build_shakespeare, database_path, write_sql_client_data
from fedlm.data.clients import (
    SPLITS,
    client_data_snippets,
    client_snippets,
    default_cache_dir,
    default_source,
    load_client_data,
    read_snippets,
)
from fedlm.data.corpus import Corpus, load_corpus, read_book, split_holdout, strip_gutenberg
from fedlm.data.pipelines import build_pipeline
from fedlm.data.preprocess import TutorialPipeline
from fedlm.data.shakespeare_text import (
    ShakespeareClients,
    client_id,
    parse_complete_works,
    read_complete_works,
)
from fedlm.data.stats import DatasetStats, SplitStats, dataset_stats, format_stats

__all__ = [
    "DATABASE_NAME",
    "SPLITS",
    "Corpus",
    "DatasetStats",
    "ShakespeareClients",
    "SplitStats",
    "TutorialPipeline",
    "build_pipeline",
    "build_shakespeare",
    "client_data_snippets",
    "client_snippets",
    "client_id",
    "database_path",
    "dataset_stats",
    "default_cache_dir",
    "default_source",
    "format_stats",
    "load_client_data",
    "load_corpus",
    "parse_complete_works",
    "read_book",
    "read_complete_works",
    "read_snippets",
    "split_holdout",
    "strip_gutenberg",
    "write_sql_client_data",
]
