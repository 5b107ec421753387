"""The pipelines as the config checks see them (fedlm/data/pipelines.py): each one's batch count
in pure Python, by its attribute, not by its name."""

from fedlm.data.pipelines import PIPELINES, BatchCounter

SNIPPETS = ["abcdefghij" * 5, "é" * 30]  # 50 vocabulary characters; 30 outside it (60 bytes)


def test_a_batch_counter_counts_as_its_pipeline_would():
    # tutorial: the é dropped, 50 characters -> 4 sequences of 10 + 1 -> 2 batches of 2
    assert BatchCounter("tutorial", seq_len=10, batch_size=2).num_batches(SNIPPETS) == 2
    # oov: 80 characters -> 7 sequences -> 3 batches; padded: 8 sequences, 4 batches
    oov = BatchCounter("tutorial", seq_len=10, batch_size=2, unknown_chars="oov")
    assert oov.num_batches(SNIPPETS) == 3
    assert BatchCounter("tutorial", 10, 2, "oov", pad=True).num_batches(SNIPPETS) == 4
    # paper: bos + 50 + eos = 52 tokens -> 5 chunks of 11; bos + 60 bytes + eos -> 6; 11 / 2 -> 6
    assert BatchCounter("paper", seq_len=10, batch_size=2).num_batches(SNIPPETS) == 6
    assert set(PIPELINES) == {"tutorial", "paper"}
