"""The one small family of fedlm exceptions.

Every message names what was wrong (the dotted config key or the file), the value given, and what
is allowed, so that a user can fix the call without reading the code.
"""

from __future__ import annotations

from collections.abc import Iterable


class FedlmError(Exception):
    """Base class of every error fedlm raises on purpose."""


class ConfigError(FedlmError, ValueError):
    """A configuration value that fedlm cannot use."""

    def __init__(self, key: str, value: object, allowed: str | Iterable[object]):
        if not isinstance(allowed, str):
            allowed = "one of " + ", ".join(repr(a) for a in allowed)
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: expected {allowed}")


class UnknownKeyError(ConfigError):
    """A config key that the typed config does not have (a typo, with or without Hydra's ``+``).

    ``where`` names the keys that were expected (``the keys of training``); with none, ``key``'s
    parent is a value, not a group of keys.
    """

    def __init__(
        self, key: str, where: str, valid_keys: Iterable[str], suggestion: str | None = None
    ):
        self.key, self.value, self.allowed = key, None, list(valid_keys)
        hint = f" (did you mean {suggestion}?)" if suggestion else ""
        if self.allowed:
            expected = f"expected one of {where}: {', '.join(self.allowed)}"
        else:
            expected = f"{key.rpartition('.')[0]} is a value, not a group of keys"
        ValueError.__init__(self, f"{key} is not a config key{hint}: {expected}")


class DataError(FedlmError):
    """Input data that is missing, unreadable or not what fedlm expects."""


class ModelError(FedlmError):
    """A model or weights file that does not fit the configured architecture."""


class RunInUseError(FedlmError):
    """A run (or output folder) that another process is writing: a run has one writer."""


class DiskFullError(FedlmError):
    """A write that found its file system full; the message names the path."""

    def __init__(self, path: object, what: str, then: str = ""):
        self.path = path
        super().__init__(f"{what} {path}: No space left on device" + (f" ({then})" if then else ""))
