"""The ``snippets`` string of a serialized ``tf.train.Example``, decoded without TensorFlow.

TFF's SQLite client data (``shakespeare.sqlite``, as TFF downloads it and as
:mod:`fedlm.data.build` writes it) keeps every example as a serialized ``tf.train.Example``
protobuf. Reading a few of its length-delimited fields by hand lets
:func:`fedlm.data.clients.read_snippets` read every client in about a second, before TensorFlow
is imported.
"""

from __future__ import annotations


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def fields(message: bytes, number: int) -> list[bytes]:
    """The length-delimited fields ``number`` of a serialized protobuf message, in order."""
    found, pos = [], 0
    while pos < len(message):
        key, pos = _varint(message, pos)
        wire_type = key & 7
        if wire_type == 2:  # length-delimited: a message, string or bytes
            length, pos = _varint(message, pos)
            if key >> 3 == number:
                found.append(message[pos : pos + length])
            pos += length
        elif wire_type == 0:
            _, pos = _varint(message, pos)
        elif wire_type in (1, 5):  # 64- or 32-bit
            pos += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type}")
    return found


def snippet(serialized_example: bytes) -> str:
    """The ``snippets`` string of a serialized ``tf.train.Example``:
    Example.features (1) -> Features.feature (1, map entries of key 1 and value 2) ->
    Feature.bytes_list (1) -> BytesList.value (1). :class:`ValueError` if it has none."""
    for features in fields(serialized_example, 1):
        for entry in fields(features, 1):
            if fields(entry, 1) == [b"snippets"]:
                for value in fields(entry, 2):
                    for bytes_list in fields(value, 1):
                        return fields(bytes_list, 1)[0].decode("utf-8")
    raise ValueError("no 'snippets' feature")
