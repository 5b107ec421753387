"""Pre-trained weights: where ``model.pretrained`` points, loading them into a checked list, and
saving a model in the form they are loaded from.

``model.pretrained`` may be:

- ``none``: random initial weights (nothing to load);
- a local Keras model (an ``.h5`` file such as the tutorial's ``.kerasmodel``, a ``.keras``
  file or a SavedModel directory);
- an ``http(s)`` URL of a Keras model, fetched once with ``tf.keras.utils.get_file`` (as the
  tutorial does) into ``cache_dir()/downloads``;
- ``dickens``: the model that ``uv run fedlm-pretrain`` saved for this architecture,
  ``cache_dir()/pretrained/<model.name>.h5``, when it is there; otherwise the tutorial's
  published batch-8 Dickens model (:data:`TUTORIAL_MODEL_URLS`), downloaded if the network allows.

Weights are checked against :func:`fedlm.models.architectures.build_model` before anyone uses
them: a model of another vocabulary or layout is refused with both shapes in the message.
"""

from __future__ import annotations

import contextlib
import io
import socket
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from fedlm import paths
from fedlm.config import ModelConfig
from fedlm.errors import ModelError
from fedlm.io import atomic_path
from fedlm.models.architectures import build_model

TUTORIAL_MODEL_URLS = {
    batch: f"https://storage.googleapis.com/tff-models-public/dickens_rnn.batch{batch}.kerasmodel"
    for batch in (1, 8)
}
DOWNLOAD_TIMEOUT_S = 30.0


def default_pretrained_path(model_name: str) -> Path:
    """Where ``fedlm-pretrain`` saves, and ``model.pretrained=dickens`` looks first."""
    return paths.cache_dir() / "pretrained" / f"{model_name}.h5"


def download_path(url: str) -> Path:
    """Where :func:`fetch_url` keeps the file downloaded from ``url``."""
    return paths.cache_dir() / "downloads" / url.rstrip("/").split("/")[-1]


def _is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def _is_none(spec: str | None) -> bool:
    return spec is None or str(spec).strip().lower() in ("none", "null", "")


def resolve_pretrained(spec: str | None, model_name: str) -> str | None:
    """The local path or URL that ``spec`` stands for (``None`` for random init); no network."""
    if _is_none(spec):
        return None
    spec = str(spec).strip()
    if spec == "dickens":
        local = default_pretrained_path(model_name)
        if local.exists():
            return str(local)
        return TUTORIAL_MODEL_URLS[8]
    if _is_url(spec):
        return spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(
            f"model.pretrained={spec!r}: no such file or directory ({path}); expected none, "
            "dickens, an http(s) URL or the path of a saved Keras model"
        )
    return str(path)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    # get_file opens URLs without a timeout; a stalled network must not hang a run.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def fetch_url(url: str, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``url`` once into ``cache_dir()/downloads`` (``tf.keras.utils.get_file``)."""
    target = download_path(url)
    if target.exists():
        return target
    # get_file falls back to /tmp/.keras when its cache_dir does not exist yet.
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # get_file prints "Downloading data from <url>" and a progress bar before it knows whether
        # the download works; a failed one would read as a silent failure followed by our error.
        with _socket_timeout(timeout_s), contextlib.redirect_stdout(io.StringIO()):
            fetched = tf.keras.utils.get_file(
                fname=target.name,
                origin=url,
                cache_dir=str(paths.cache_dir()),
                cache_subdir="downloads",
            )
    except Exception as e:  # get_file wraps network errors in a bare Exception
        raise ModelError(f"could not download {url}: {e}") from e
    print(f"downloaded {url} to {fetched}")
    return Path(fetched)


def _no_model_message(spec: str, model_name: str, reason: str) -> str:
    return (
        f"model.pretrained={spec!r}: {reason}. Run `uv run fedlm-pretrain model={model_name}` "
        f"to save one at {default_pretrained_path(model_name)}, or set model.pretrained to the "
        "path of a saved Keras model (or model.pretrained=none for random weights)"
    )


def fetch_pretrained(
    spec: str | None, model_name: str, timeout_s: float = DOWNLOAD_TIMEOUT_S
) -> Path | None:
    """The local file of ``spec``, downloading it if it is a URL; ``None`` for random init."""
    where = resolve_pretrained(spec, model_name)
    if where is None:
        return None
    if not _is_url(where):
        return Path(where)
    try:
        return fetch_url(where, timeout_s)
    except ModelError as e:
        if str(spec).strip() == "dickens":
            reason = f"no pre-trained model in fedlm's cache, and {e}"
            raise ModelError(_no_model_message(spec, model_name, reason)) from e
        raise


def pretrained_available(
    spec: str | None, model_name: str, allow_download: bool = True, timeout_s: float = 10.0
) -> bool:
    """Whether :func:`load_pretrained_weights` would find a file for ``spec`` (``none``: True).

    A URL counts when it is already downloaded, or (``allow_download``) when downloading it now
    succeeds within ``timeout_s``; with no network this returns False quickly. Never raises for a
    missing model; a local path that does not exist is False.
    """
    try:
        where = resolve_pretrained(spec, model_name)
    except ModelError:
        return False
    if where is None or not _is_url(where) or download_path(where).exists():
        return True
    if not allow_download:
        return False
    try:
        fetch_url(where, timeout_s)
    except ModelError:
        return False
    return True


def load_keras_model(path: str | Path) -> tf.keras.Model:
    """``tf.keras.models.load_model(path, compile=False)``, with a fedlm error on failure."""
    try:
        return tf.keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError, ImportError, TypeError) as e:
        raise ModelError(f"could not load a Keras model from {path}: {e}") from e


def check_weights(
    weights: list[np.ndarray],
    cfg: ModelConfig,
    vocab_size: int,
    source: str,
    mask_zero: bool = False,
) -> None:
    """Raise :class:`ModelError` unless ``weights`` fit ``build_model(cfg, vocab_size)``."""
    expected = build_model(cfg, vocab_size, mask_zero=mask_zero)
    wanted = [(v.name.split(":")[0], tuple(v.shape)) for v in expected.weights]
    got = [tuple(w.shape) for w in weights]
    if got and got[0] != wanted[0][1] and got[0][1:] == wanted[0][1][1:]:
        raise ModelError(
            f"{source}: pretrained model has vocabulary {got[0][0]} but the data pipeline needs "
            f"{vocab_size} (embedding shape {got[0]} vs {wanted[0][1]})"
        )
    if len(got) != len(wanted):
        raise ModelError(
            f"{source}: pretrained model has {len(got)} weight arrays {got} but model "
            f"{cfg.name!r} ({cfg.layers} x {cfg.cell.upper()}({cfg.units}), embedding "
            f"{cfg.embedding_dim}) needs {len(wanted)}: {[s for _, s in wanted]}"
        )
    for (name, want), have in zip(wanted, got, strict=True):
        if have != want:
            raise ModelError(
                f"{source}: weight {name!r} of model {cfg.name!r} needs shape {want} but the "
                f"pretrained model has {have}"
            )


def save_model(model: tf.keras.Model, target: Path) -> Path:
    """The tutorial's save (HDF5, no optimizer), written beside ``target`` and renamed onto it."""
    with atomic_path(target, suffix=".h5") as tmp, warnings.catch_warnings():
        # HDF5 is Keras 2's "legacy" format, and the one the tutorial's models come in.
        warnings.filterwarnings("ignore", message=".*HDF5 file.*", category=UserWarning)
        tf.keras.models.save_model(model, str(tmp), include_optimizer=False, save_format="h5")
    return target


def load_pretrained_weights(
    spec: str | None, cfg: ModelConfig, vocab_size: int, mask_zero: bool = False
) -> list[np.ndarray] | None:
    """The weights of the model that ``spec`` names, checked against ``cfg``; ``None`` for none."""
    path = fetch_pretrained(spec, cfg.name)
    if path is None:
        return None
    weights = load_keras_model(path).get_weights()
    check_weights(
        weights, cfg, vocab_size, source=f"model.pretrained={spec!r} ({path})", mask_zero=mask_zero
    )
    return weights
