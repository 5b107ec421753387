import numpy as np
import pytest
import tensorflow as tf

from fedlm import vocab
from fedlm.errors import ConfigError, ModelError
from fedlm.models.architectures import build_model
from fedlm.models.generate import (
    TextGenerator,
    generate_text,
    load_weights_for_generation,
    sample_next,
)


@pytest.fixture
def weights(tiny):
    tf.keras.utils.set_random_seed(3)
    return build_model(tiny, 86).get_weights()


def test_generation_is_reproducible_for_a_seed(weights, tiny):
    text = generate_text(weights, tiny, 86, "To be, ", length=40, seed=7)
    assert text.startswith("To be, ") and len(text) == 47
    assert set(text) <= set(vocab.CHARS)
    assert generate_text(weights, tiny, 86, "To be, ", length=40, seed=7) == text
    assert generate_text(weights, tiny, 86, "To be, ", length=40, seed=8) != text
    assert generate_text(weights, tiny, 86, "To be, ", length=0, seed=7) == "To be, "


def test_one_generator_used_again_gives_each_time_what_a_new_one_gives(weights, tiny):
    """The model is built once and its recurrent state starts at zero for every text, whatever
    the weights and the prompt's length before."""
    tf.keras.utils.set_random_seed(4)
    other = [8 * w for w in build_model(tiny, 86).get_weights()]  # sharper: greedy texts differ
    generator = TextGenerator(tiny, 86)
    for w, prompt in ((weights, "To be, "), (other, "Or"), (weights, "To be, "), (other, "To")):
        expected = generate_text(w, tiny, 86, prompt, length=20, top_k=1)
        assert generator(w, prompt, length=20, top_k=1) == expected
    assert generator(other, "Or", length=20, top_k=1) != generator(
        weights, "Or", length=20, top_k=1
    )


def test_top_1_is_greedy_whatever_the_seed(weights, tiny):
    one = generate_text(weights, tiny, 86, "a", length=15, top_k=1, seed=1)
    assert generate_text(weights, tiny, 86, "a", length=15, top_k=1, seed=2) == one


def test_weights_of_a_model_with_an_oov_row_generate_vocabulary_characters(tiny):
    weights = build_model(tiny, 87).get_weights()
    text = generate_text(weights, tiny, 87, "x", length=30, seed=0)
    assert len(text) == 31 and set(text) <= set(vocab.CHARS)


def test_sample_next_keeps_top_k_and_never_draws_the_oov_id():
    rng = np.random.default_rng(0)
    logits = np.full(87, -50.0)
    logits[[3, 4]] = [2.0, 1.5]
    logits[vocab.OOV_ID] = 100.0
    draws = {sample_next(logits, 1.0, 2, rng) for _ in range(200)}
    assert draws == {3, 4}
    assert {sample_next(logits, 1.0, 1, rng) for _ in range(20)} == {3}
    # A low temperature sharpens towards the most likely character.
    assert {sample_next(logits, 0.01, None, rng) for _ in range(20)} == {3}


def test_prompt_with_unknown_characters_lists_them(weights, tiny):
    with pytest.raises(ConfigError, match=r"not in it: \['é', '€'\]"):
        generate_text(weights, tiny, 86, "café €5", length=5)
    with pytest.raises(ConfigError, match="prompt=''"):
        generate_text(weights, tiny, 86, "", length=5)
    with pytest.raises(ConfigError, match="temperature=0"):
        generate_text(weights, tiny, 86, "a", temperature=0)
    with pytest.raises(ConfigError, match="top_k=0"):
        generate_text(weights, tiny, 86, "a", top_k=0)


def test_load_weights_for_generation_from_a_saved_model(saved_tiny, tiny):
    path, weights = saved_tiny
    loaded = load_weights_for_generation(path, tiny)  # vocabulary read from the model
    assert [w.shape for w in loaded] == [w.shape for w in weights]
    text = generate_text(loaded, tiny, 86, "Marley ", length=10, seed=1)
    assert text == generate_text(weights, tiny, 86, "Marley ", length=10, seed=1)
    with pytest.raises(ModelError, match="vocabulary 86 but the data pipeline needs 87"):
        load_weights_for_generation(path, tiny, 87)
    with pytest.raises(ModelError, match="generation needs trained weights"):
        load_weights_for_generation("none", tiny)


def test_a_paper_pipeline_model_generates_with_shifted_ids(tiny):
    # TFF's baseline ids: 0 is padding, characters are 1..86, then oov, bos, eos.
    weights = build_model(tiny, 90).get_weights()
    bias = weights[-1]
    bias[:] = -30.0
    bias[1 + vocab.CHAR_TO_ID["e"]] = 30.0  # the model always says 'e'
    assert generate_text(weights, tiny, 90, "th", length=5, id_offset=1) == "theeeee"
    with pytest.raises(ConfigError, match="id_offset=5"):
        generate_text(weights, tiny, 90, "th", length=5, id_offset=5)
