import collections
import importlib.util

import pytest

from fedlm.data.pipelines import build_pipeline
from fedlm.data.preprocess import TutorialPipeline
from fedlm.data.stats import DatasetStats, SplitStats, dataset_stats, format_stats
from fedlm.errors import ConfigError

# seq_len 4, batch 2: a client needs (4 + 1) * 2 = 10 characters for one full batch.
SNIPPETS = {
    "train": {
        "A": ["abcde", "fghij"],  # 10 characters: one batch
        "B": ["abc"],  # 3: empty without padding
        "C": ["a|b~c", "defg", "hijklmnopqrstuvwxyz"],  # 28, 26 known: two batches
    },
    "test": {"A": ["abcd"], "B": ["ab"], "C": ["abcdefghijk"]},
}


def test_dataset_stats_counts_clients_examples_characters_and_empty_clients():
    stats = dataset_stats(SNIPPETS, TutorialPipeline(seq_len=4, batch_size=2))

    assert stats == DatasetStats(
        clients=3,
        splits={
            "train": SplitStats(
                clients=3, examples=6, chars_min=3, chars_median=10, chars_max=28, empty_clients=1
            ),
            "test": SplitStats(
                clients=3, examples=3, chars_min=2, chars_median=4, chars_max=11, empty_clients=2
            ),
        },
        unknown_chars=collections.Counter({"|": 1, "~": 1}),
        pipeline="TutorialPipeline(seq_len=4, batch_size=2, shuffle_buffer=100, "
        "unknown_chars='drop', pad=False)",
    )


def test_padding_leaves_no_client_empty():
    stats = dataset_stats(
        SNIPPETS, build_pipeline("tutorial", 4, 2, unknown_chars="drop", pad=True)
    )

    assert [s.empty_clients for s in stats.splits.values()] == [0, 0]


def test_format_stats():
    stats = dataset_stats({"train": SNIPPETS["train"]}, TutorialPipeline(seq_len=4, batch_size=2))

    assert format_stats(stats).splitlines() == [
        "clients: 3",
        "train: 3 clients, 6 examples",
        "  characters per client: min 3, median 10, max 28",
        "  empty clients (zero batches): 1 of 3",
        "unknown characters: 2 ('|': 1, '~': 1)",
        "pipeline: TutorialPipeline(seq_len=4, batch_size=2, shuffle_buffer=100, "
        "unknown_chars='drop', pad=False)",
    ]


def test_bad_pipeline_settings_are_config_errors():
    with pytest.raises(ConfigError) as error:
        build_pipeline("bigram")
    assert error.value.key == "data.pipeline"
    with pytest.raises(ConfigError) as error:
        build_pipeline("tutorial", seq_len=0)
    assert error.value.key == "training.seq_len"
    with pytest.raises(ConfigError) as error:
        build_pipeline("paper", pad=True)
    assert error.value.key == "data.pad"
    with pytest.raises(ConfigError, match="data.pipeline=paper") as error:
        build_pipeline("tutorial", loss_on_padding=True)
    assert error.value.key == "data.loss_on_padding"


@pytest.mark.skipif(
    importlib.util.find_spec("fedlm.data.paper") is None, reason="fedlm/data/paper.py not there yet"
)
def test_the_paper_pipeline_sizes_clients_too():
    pipeline = build_pipeline("paper", seq_len=4, batch_size=2)

    assert pipeline.name == "paper"
    stats = dataset_stats(SNIPPETS, pipeline)
    assert stats.splits["train"].empty_clients == 0  # the paper's pipeline pads every snippet
