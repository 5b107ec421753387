"""The character vocabularies of fedlm.

The tutorial's fixed 86-character vocabulary comes first, in the tutorial's order, so that character
ids match TFF's published Dickens models ('d' = 0, 'h' = 1, ..., '\\r' = 85). It is the same list
that TFF's Shakespeare baseline uses (`char_prediction_preprocessing.CHAR_VOCAB`), where ids are
shifted by one to leave 0 for padding and three more ids are added (oov, bos, eos).

What happens to a character outside the vocabulary is a policy, never a silent default:

- ``drop``:     the character is removed from the text (the default).
- ``oov``:      the character becomes the reserved id ``len(CHARS)`` (86); the model gets one more
                input row for it, and targets equal to it are left out of loss and metrics, so the
                model never has to predict it.
- ``tutorial``: the character becomes id 0 (``'d'``), exactly as the tutorial's lookup table does.
                Only for reproducing the tutorial bit for bit.

Whatever the policy, :func:`count_unknown` counts the characters it touches.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from fedlm.errors import ConfigError

CHARS = "dhlptx@DHLPTX $(,048cgkoswCGKOSW[_#'/37;?bfjnrvzBFJNRVZ\"&*.26:\naeimquyAEIMQUY]!%)-159\r"
CHAR_TO_ID = {char: i for i, char in enumerate(CHARS)}

UNKNOWN_POLICIES = ("drop", "oov", "tutorial")
OOV_ID = len(CHARS)  # 86: the reserved input id of the ``oov`` policy
IGNORE_ID = -1  # target id that loss and metrics leave out (padding, reserved oov)


def check_policy(policy: str, key: str = "data.unknown_chars") -> str:
    if policy not in UNKNOWN_POLICIES:
        raise ConfigError(key, policy, UNKNOWN_POLICIES)
    return policy


def input_vocab_size(policy: str) -> int:
    """Rows the model's embedding needs under ``policy`` (86, or 87 with a reserved oov id)."""
    return len(CHARS) + (1 if check_policy(policy) == "oov" else 0)


def encode(text: str, policy: str = "drop") -> list[int]:
    """Character ids of ``text`` under the unknown-character ``policy`` (pure Python)."""
    check_policy(policy)
    if policy == "drop":
        return [CHAR_TO_ID[c] for c in text if c in CHAR_TO_ID]
    fallback = OOV_ID if policy == "oov" else 0
    return [CHAR_TO_ID.get(c, fallback) for c in text]


def decode(ids: Iterable[int]) -> str:
    """Text of ``ids``; ids outside the vocabulary (padding, oov) are left out."""
    return "".join(CHARS[i] for i in ids if 0 <= i < len(CHARS))


def unknown_chars(text: str) -> collections.Counter[str]:
    """The characters of ``text`` that are not in the vocabulary, with their counts."""
    return collections.Counter(c for c in text if c not in CHAR_TO_ID)


def count_unknown(text: str) -> int:
    return sum(unknown_chars(text).values())
