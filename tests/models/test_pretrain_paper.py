"""fedlm-pretrain with pipeline=paper: the papers' 90-id pipeline on the books' paragraphs, for a
model that starts a data.pipeline=paper run."""

import json
from pathlib import Path

import numpy as np
import pytest
from shipped_models import model_config

from fedlm.config import PretrainConfig
from fedlm.data.inmemory import snippet_dataset
from fedlm.data.paper import PAD, VOCAB_SIZE, PaperPipeline
from fedlm.errors import ConfigError, ModelError
from fedlm.models.pretrain import evaluate_saved, paper_batches, paragraphs, pretrain
from fedlm.models.pretrained import load_pretrained_weights

PARAGRAPHS = 30


@pytest.fixture
def corpus(tmp_path):
    books = []
    for name, line in (("one", "It was the best of times,\nit was"), ("two", "Marley was dead.")):
        path = tmp_path / f"{name}.txt"
        path.write_text("\n\n".join(f"{line} {i}." for i in range(PARAGRAPHS)) + "\n")
        books.append(str(path))
    return books


def config(corpus, **changes) -> PretrainConfig:
    settings = dict(
        model=model_config("tiny"),
        corpus=corpus,
        pipeline="paper",
        epochs=2,
        steps_per_epoch=3,
        seq_len=10,
        batch_size=4,
        shakespeare="synthetic",
        log_every=2,
    )
    return PretrainConfig(**{**settings, **changes})


def test_paragraphs_are_blank_line_separated_and_keep_their_line_breaks():
    text = "First line\nsecond line.\n\n  \nNext one.\r\n\r\nLast\n"
    assert paragraphs(text) == ["First line\nsecond line.", "Next one.", "Last"]


def test_the_batches_are_the_paper_pipelines_on_the_books_paragraphs_last_ones_held_out(corpus):
    cfg = config(corpus, validation_fraction=0.1)
    data = paper_batches(cfg)
    assert (data.vocab_size, data.ignore_id) == (VOCAB_SIZE, PAD)
    assert (data.train_size, data.held_out_size) == (2 * 27, 2 * 3)  # 3 of each book's 30
    one, two = (Path(path).read_text().split("\n\n") for path in corpus)
    held_out = [p.strip() for p in one[27:] + two[27:]]
    pipeline = PaperPipeline(seq_len=10, batch_size=4)
    expected = list(pipeline.evaluate(snippet_dataset(held_out)).as_numpy_iterator())
    got = list(data.held_out.as_numpy_iterator())
    assert len(got) == len(expected) == data.held_out_batches
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_pretrain_paper_saves_a_90_id_model_that_a_paper_run_loads(corpus, isolated_cache):
    cfg = config(corpus)
    result = pretrain(cfg)
    assert result.path == isolated_cache / "pretrained" / "tiny_paper.h5"
    assert (result.vocab_size, result.train_steps, result.epochs_run) == (VOCAB_SIZE, 6, 2)
    record = json.loads(result.path.with_suffix(".json").read_text())
    assert record["config"]["pipeline"] == "paper"
    assert load_pretrained_weights(str(result.path), cfg.model, VOCAB_SIZE) is not None
    with pytest.raises(ModelError, match="vocabulary 90 but the data pipeline needs 86"):
        load_pretrained_weights(str(result.path), cfg.model, 86)
    cfg.model.pretrained = str(result.path)
    metrics, source = evaluate_saved(cfg)  # the saved model scores what pretrain reported
    assert source == "synthetic"
    for key, value in metrics.items():
        assert value == pytest.approx(result.metrics[key], rel=1e-5), key


def test_an_unknown_pipeline_is_refused_before_any_work(corpus):
    with pytest.raises(ConfigError, match=r"pipeline=.*'tutorial', 'paper'"):
        pretrain(config(corpus, pipeline="leaf"))
