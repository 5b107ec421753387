"""fedlm-pretrain's job: train, evaluate and save a model, with the tutorial's pipeline and with
the papers' (pipeline=paper: a 90-id model that starts a data.pipeline=paper run)."""

import json

import pytest
from shipped_models import model_config

from fedlm.config import PretrainConfig
from fedlm.data.paper import VOCAB_SIZE
from fedlm.errors import ConfigError, DataError, ModelError
from fedlm.models.generate import generate_text, load_weights_for_generation
from fedlm.models.pretrained import default_pretrained_path, load_pretrained_weights
from fedlm.paths import shared_data_dir
from fedlm.pretraining import evaluate_saved, pretrain

METRIC_KEYS = {
    f"{split}_{name}"
    for split in ("validation", "shakespeare")
    for name in ("loss", "accuracy", "perplexity", "bits_per_char")
} | {"train_loss", "train_accuracy"}


@pytest.fixture
def corpus(tmp_path):
    books = []
    for name, line in (
        ("one", "It was the best of times. "),
        ("two", "Marley was dead: to begin with. "),
    ):
        path = tmp_path / f"{name}.txt"
        path.write_text(line * 400)
        books.append(str(path))
    return books


def test_pretrain_trains_evaluates_and_saves_atomically(corpus, tmp_path, isolated_cache):
    cfg = PretrainConfig(
        model=model_config("tiny"),
        corpus=corpus,
        patience=5,
        epochs=2,
        steps_per_epoch=3,
        seq_len=20,
        batch_size=4,
        shakespeare="synthetic",
        log_every=2,
    )
    result = pretrain(cfg)
    assert result.path == default_pretrained_path("tiny") == isolated_cache / "pretrained/tiny.h5"
    assert sorted(p.name for p in result.path.parent.iterdir()) == ["tiny.h5", "tiny.json"]
    assert set(result.metrics) == METRIC_KEYS
    assert (result.train_steps, result.epochs_run, result.vocab_size) == (6, 2, 86)
    assert result.shakespeare_source == "synthetic"
    record = json.loads(result.path.with_suffix(".json").read_text())
    assert record["metrics"] == result.metrics and record["config"]["model"]["name"] == "tiny"
    # The record is the model's committed history: per-epoch metrics, the epoch kept, the code.
    assert {len(v) for v in record["history"].values()} == {2}
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(record["history"])
    assert record["history"]["loss"][record["kept_epoch"] - 1] == result.metrics["train_loss"]
    assert len(record["git"]["mlflow.source.git.commit"]) == 40
    assert record["shakespeare_build"] == {}  # synthetic: no build behind it
    assert load_pretrained_weights("dickens", cfg.model, 86) is not None
    cfg.model.pretrained = "dickens"
    metrics, source = evaluate_saved(cfg)  # the saved model scores what pretrain reported
    assert source == "synthetic"
    for key, value in metrics.items():
        assert value == pytest.approx(result.metrics[key], rel=1e-5), key


def test_pretrain_to_a_path_with_oov_policy_and_no_shakespeare(corpus, tmp_path):
    out = tmp_path / "models" / "mine.h5"
    cfg = PretrainConfig(
        model=model_config("tiny"),
        corpus=corpus,
        unknown_chars="oov",
        epochs=1,
        steps_per_epoch=2,
        seq_len=20,
        batch_size=4,
        shakespeare="none",
        output=str(out),
    )
    result = pretrain(cfg)
    assert result.path == out and result.vocab_size == 87
    assert "shakespeare_accuracy" not in result.metrics
    assert load_pretrained_weights(str(out), cfg.model, 87) is not None


def test_bad_values_and_short_corpora_are_refused(corpus, tmp_path):
    base = dict(model=model_config("tiny"), corpus=corpus, shakespeare="none")
    with pytest.raises(ConfigError, match="optimizer='adagrad'"):
        pretrain(PretrainConfig(**base, optimizer="adagrad"))
    with pytest.raises(ConfigError, match="validation_fraction=0.0"):
        pretrain(PretrainConfig(**base, validation_fraction=0.0))
    with pytest.raises(ConfigError, match="shakespeare='leaf'"):
        pretrain(PretrainConfig(**{**base, "shakespeare": "leaf"}))
    with pytest.raises(DataError, match="too short"):
        pretrain(PretrainConfig(**base, batch_size=400))
    with pytest.raises(DataError, match="does not exist"):
        pretrain(PretrainConfig(**{**base, "corpus": [str(tmp_path / "none.txt")]}))


@pytest.mark.slow  # the real books (the slow set's); the tests above pre-train on small texts
def test_pretrain_on_the_shared_dickens_then_generate(tmp_path):
    books = [
        shared_data_dir() / "dickens" / n
        for n in ("a_tale_of_two_cities.txt", "a_christmas_carol.txt")
    ]
    if not all(b.exists() for b in books):
        pytest.skip(f"the Dickens books are not under {shared_data_dir() / 'dickens'}")
    cfg = PretrainConfig(
        model=model_config("tiny"),
        epochs=1,
        steps_per_epoch=4,
        batch_size=8,
        eval_batches=2,
        shakespeare="none",
        output=str(tmp_path / "d.h5"),
    )
    result = pretrain(cfg)
    assert result.metrics["validation_accuracy"] > 0.0
    weights = load_weights_for_generation(result.path, cfg.model)
    text = generate_text(weights, cfg.model, 86, "It was ", length=50, seed=0)
    assert text.startswith("It was ") and len(text) == 57


# pipeline=paper


def paper_config(corpus, **changes) -> PretrainConfig:
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


def test_pretrain_paper_saves_a_90_id_model_that_a_paper_run_loads(paragraph_books, isolated_cache):
    cfg = paper_config(paragraph_books)
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


def test_an_unknown_pipeline_is_refused_before_any_work(paragraph_books):
    with pytest.raises(ConfigError, match=r"pipeline=.*'tutorial', 'paper'"):
        pretrain(paper_config(paragraph_books, pipeline="leaf"))


def test_every_data_pipeline_can_be_pre_trained_for_and_names_its_model():
    from fedlm.config import ModelConfig
    from fedlm.data.pipelines import PIPELINES
    from fedlm.pretraining.batches import CORPUS_BATCHES
    from fedlm.pretraining.job import default_output

    assert list(CORPUS_BATCHES) == list(PIPELINES)
    tiny = ModelConfig(name="tiny")
    assert default_output(PretrainConfig(model=tiny)) == default_pretrained_path("tiny")
    paper = default_output(PretrainConfig(model=tiny, pipeline="paper"))
    assert paper == default_pretrained_path("tiny").with_name("tiny_paper.h5")
