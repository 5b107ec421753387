import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from shipped_models import model_config

from fedlm.errors import ModelError
from fedlm.models.pretrained import (
    TUTORIAL_MODEL_URLS,
    default_pretrained_path,
    load_pretrained_weights,
    pretrained_available,
    resolve_pretrained,
)

URL = TUTORIAL_MODEL_URLS[8]


class _Response(io.BytesIO):
    def info(self):
        return {}


@pytest.fixture
def network(monkeypatch):
    """The network boundary of tf.keras.utils.get_file: serves ``served[url] -> local file``."""
    from keras.src.utils import data_utils

    served, requested = {}, []

    def urlopen(url, data=None):
        requested.append(url)
        if url not in served:
            raise urllib.error.URLError("no network in tests")
        return _Response(Path(served[url]).read_bytes())

    monkeypatch.setattr(data_utils, "urlopen", urlopen)
    return served, requested


def test_resolve_names_none_paths_urls_and_dickens(tmp_path, saved_tiny):
    path, _ = saved_tiny
    assert resolve_pretrained("none", "tiny") is None
    assert resolve_pretrained(str(path), "tiny") == str(path)
    assert resolve_pretrained(URL, "tiny") == URL
    assert resolve_pretrained("dickens", "tiny") == URL  # nothing pre-trained in the cache
    local = default_pretrained_path("tiny")
    local.parent.mkdir(parents=True)
    local.write_bytes(path.read_bytes())
    assert resolve_pretrained("dickens", "tiny") == str(local)
    with pytest.raises(ModelError, match="no such file"):
        resolve_pretrained(str(tmp_path / "missing.h5"), "tiny")


def test_load_from_a_path_gives_the_saved_weights(saved_tiny, tiny):
    path, weights = saved_tiny
    assert load_pretrained_weights("none", tiny, 86) is None
    loaded = load_pretrained_weights(str(path), tiny, 86)
    for a, b in zip(loaded, weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_of_another_vocabulary_or_shape_is_refused(saved_tiny, tiny):
    path, _ = saved_tiny
    with pytest.raises(ModelError, match="vocabulary 86 but the data pipeline needs 90"):
        load_pretrained_weights(str(path), tiny, 90)
    with pytest.raises(
        ModelError,
        match=r"needs shape \(8, 48\) but the pretrained model has "
        r"\(8, 96\)",
    ):
        load_pretrained_weights(str(path), model_config("tiny", units=16), 86)
    with pytest.raises(ModelError, match="has 6 weight arrays"):
        load_pretrained_weights(str(path), model_config("tiny", layers=2), 86)


def test_a_file_that_is_no_keras_model_is_refused(tmp_path, tiny):
    bad = tmp_path / "notes.h5"
    bad.write_text("not a model")
    with pytest.raises(ModelError, match="could not load a Keras model"):
        load_pretrained_weights(str(bad), tiny, 86)


def test_url_is_downloaded_once_into_the_cache(network, saved_tiny, tiny, isolated_cache):
    served, requested = network
    path, weights = saved_tiny
    served[URL] = path
    assert pretrained_available("dickens", "tiny", allow_download=False) is False
    loaded = load_pretrained_weights("dickens", tiny, 86)
    for a, b in zip(loaded, weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (isolated_cache / "downloads" / "dickens_rnn.batch8.kerasmodel").exists()
    assert load_pretrained_weights(URL, tiny, 86) is not None
    assert requested == [URL]
    assert pretrained_available("dickens", "tiny", allow_download=False) is True


def test_without_network_dickens_says_how_to_get_a_model(network, tiny, capfd):
    _, requested = network
    assert pretrained_available("dickens", "tiny") is False
    assert capfd.readouterr().out == ""  # not get_file's "Downloading data from ..." line
    with pytest.raises(ModelError, match="uv run fedlm-pretrain model=tiny"):
        load_pretrained_weights("dickens", tiny, 86)
    with pytest.raises(ModelError, match="could not download"):
        load_pretrained_weights(TUTORIAL_MODEL_URLS[1], tiny, 86)
    assert requested == [URL, URL, TUTORIAL_MODEL_URLS[1]]


def test_availability_without_network(saved_tiny, tmp_path):
    path, _ = saved_tiny
    assert pretrained_available("none", "tiny") is True
    assert pretrained_available(str(path), "tiny") is True
    assert pretrained_available(str(tmp_path / "missing.h5"), "tiny") is False
