"""UTF-8 conversion of text arrays (numpy's own astype(bytes/str) is ASCII-only)."""

from __future__ import annotations

import numpy as np
import pytest

from core.utf8 import to_bytes, to_str


@pytest.mark.parametrize("values", [
    np.array(["Amélie", "x"]),  # str
    np.array(["Amélie", "x"], dtype=object),
    np.array([b"Am\xc3\xa9lie", "x"], dtype=object),  # mixed
])
def test_to_bytes_encodes_utf8(values):
    assert to_bytes(values).tolist() == [b"Am\xc3\xa9lie", b"x"]


def test_round_trip_keeps_shape_and_text():
    text = np.array([["東京物語", "Zoë"], ["a", ""]], dtype=object)
    encoded = to_bytes(text)
    assert encoded.shape == (2, 2) and encoded[0, 0] == "東京物語".encode("utf-8")
    assert to_str(encoded).tolist() == [["東京物語", "Zoë"], ["a", ""]]
    assert to_str(np.array([b"Zo\xc3\xab"], dtype=object)).tolist() == ["Zoë"]


def test_empty_and_non_text_values():
    assert to_bytes(np.zeros(0, dtype=object)).shape == (0,)
    assert to_str(np.zeros(0, dtype=object)).shape == (0,)
    assert to_bytes(np.array([1, 2])).tolist() == [b"1", b"2"]


def test_invalid_utf8_raises():
    with pytest.raises(UnicodeDecodeError):
        to_str(np.array([b"\xff"], dtype=object))
