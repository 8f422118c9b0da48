"""Seeded byte-level mutation of valid requests, for the fuzz tests and the reliability benchmark."""

from __future__ import annotations

import random


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four random edits: flip a bit, cut, insert random bytes, or repeat a slice.

    Args:
        rng: the seeded generator (the same seed gives the same mutations).
        data: a valid request (body, path or serialized message).

    Returns:
        The mutated bytes.
    """
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(4)
        position = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            index = rng.randrange(len(out))
            out[index] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del out[position:position + rng.randint(1, 8)]
        elif kind == 2:
            out[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        else:
            out[position:position] = out[max(0, position - 8):position]
    return bytes(out)
