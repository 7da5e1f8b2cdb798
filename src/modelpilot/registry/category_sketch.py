"""Which values a categorical feature's pooled tail held: a Bloom filter kept with the profile.

A profile of more than ``TOP_CATEGORIES`` categories names the most frequent and pools the
rest, so without more, a value outside the named ones may be of that tail or new, and a
column whose every value is new (fresh UUIDs where the reference held customer ids) read as
"other", as the tail did: no drift. The filter answers "did the reference hold this value?"
for the tail's values with no false "no" and a stated rate of false "yes" (a new value taken
for one of the tail's), in about 1.2 bytes a value at 1%, so the monitor can tell a new value
from a tail value (see ``monitoring.category_bins``).

Values are hashed by their ``category_key`` text (see ``text_hashes``), computed by NumPy
over a whole array of texts at once: the same in every process and release
(Python's own ``hash`` of text is salted per process), and fast enough for the monitor, which
checks every request's values outside the named categories.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FALSE_POSITIVE_RATE = 0.01
"""The share of new values that the filter takes for the tail's, where it holds its values
within ``MAX_SKETCH_BYTES``: about 1.2 bytes a value (14,600 values: 17 KB)."""
MAX_SKETCH_BYTES = 256 * 1024
"""The largest filter a profile keeps (some 340 KB of JSON a feature): it holds about 219,000
values at ``FALSE_POSITIVE_RATE``. A tail of more values gets a filter of this size, whose
false-positive rate grows with them (500,000 values: 14%; a million: 38%; five million: 85%),
so that fewer new values are told new; the unseen test expects as many fewer (see
``TailSketch.caught``), so it stays at its level and only loses power."""
HASH_BUDGET = 1 << 22
"""Code points hashed in one NumPy pass (16 MB of UTF-32): texts are hashed in passes of
about equal length, so that one long text does not make every text of a batch as wide."""

FEW_KEYS = 6
"""Up to this many texts are checked in plain Python, past it by NumPy (see ``held``)."""

_MASK = (1 << 64) - 1
_MULTIPLIER = np.uint64(0x9FB21C651E98DF25)
_SECOND = 0x9E3779B97F4A7C15
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
"""An odd 64-bit multiplier for the polynomial of a text's code points (see ``text_hashes``)."""


@dataclass(frozen=True, slots=True)
class TailSketch:
    """The values of a categorical feature's pooled tail (a Bloom filter of ``bits`` bits and
    ``hashes`` probes a value), and what the reference says of values it never held: how
    many of its values it held once and twice in its ``rows`` rows (Good and Turing: a fresh
    row holds a value the reference never held about as often as a reference row holds one
    no other row does)."""

    bits: bytes
    hashes: int
    values: int
    """The tail's distinct values put in the filter."""
    once: int
    """The reference's values held by one row of all of them (not of the held-out half)."""
    twice: int
    """The reference's values held by two rows."""
    rows: int
    """All the reference's rows, missing values included (not the held-out half's)."""

    @classmethod
    def build(cls, keys: Sequence[str], once: int, twice: int, rows: int) -> TailSketch:
        """The filter of ``keys`` (the tail's distinct values, by ``category_key``), sized for
        ``FALSE_POSITIVE_RATE`` within ``MAX_SKETCH_BYTES``."""
        n = max(len(keys), 1)
        wanted = math.ceil(-n * math.log(FALSE_POSITIVE_RATE) / math.log(2) ** 2)
        size = min(-(-wanted // 8), MAX_SKETCH_BYTES)
        hashes = max(1, round(8 * size / n * math.log(2)))
        bits = np.zeros(size, dtype=np.uint8)
        if keys:
            positions = _positions(text_hashes(keys), hashes, 8 * size).ravel()
            np.bitwise_or.at(bits, positions >> 3, np.left_shift(1, positions & 7).astype(np.uint8))
        return cls(bits.tobytes(), hashes, len(keys), once, twice, rows)

    @property
    def false_positive_rate(self) -> float:
        """The expected share of new values that the filter takes for the tail's."""
        m = 8 * len(self.bits)
        return (1 - math.exp(-self.hashes * self.values / m)) ** self.hashes if m else 1.0

    @property
    def caught(self) -> float:
        """The share of new values told new (the rest read as the tail's)."""
        return 1 - self.false_positive_rate

    def held(self, keys: Sequence[str]) -> np.ndarray:
        """Whether the filter holds each of ``keys`` (True for every value it was built of,
        and for ``false_positive_rate`` of the others)."""
        if len(keys) <= FEW_KEYS:
            return np.fromiter(map(self._holds, keys), dtype=bool, count=len(keys))
        bits = np.frombuffer(self.bits, dtype=np.uint8)
        positions = _positions(text_hashes(keys), self.hashes, 8 * len(self.bits))
        found = (bits[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1
        return np.asarray(found.all(axis=1), dtype=bool)

    def _holds(self, key: str) -> bool:
        """``held`` of one text, in plain Python: the same bits as NumPy's, without the
        fixed cost of a dozen NumPy calls (a request of a row or a few)."""
        first = _mix(_python_polynomial(key))
        second = _mix(first ^ _SECOND) | 1
        m = 8 * len(self.bits)
        for probe in range(self.hashes):
            position = ((first + probe * second) & _MASK) % m
            if not (self.bits[position >> 3] >> (position & 7)) & 1:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "bloom": base64.b64encode(self.bits).decode("ascii"),
            "hashes": self.hashes,
            "values": self.values,
            "once": self.once,
            "twice": self.twice,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TailSketch:
        return cls(
            base64.b64decode(data["bloom"]),
            int(data["hashes"]),
            int(data["values"]),
            int(data["once"]),
            int(data["twice"]),
            int(data["rows"]),
        )


def text_hashes(keys: Sequence[str]) -> np.ndarray:
    """Each text's 64-bit hash: the polynomial of its Unicode code points (UTF-32) in
    ``_MULTIPLIER`` modulo 2**64, mixed by splitmix64's finaliser. NumPy computes the
    polynomial for many texts in one matrix product, over texts of about equal length (a
    few long ones do not make every text of a batch as wide)."""
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    if lengths.size and int(lengths.max()) * lengths.size <= HASH_BUDGET:
        return _mixed(_polynomial(list(keys), int(lengths.max())))
    order = np.argsort(lengths, kind="stable")
    out = np.empty(len(keys), dtype=np.uint64)
    start = 0
    while start < order.size:
        # As many texts as fit the budget at the widest's width (at least one).
        stop = min(start + HASH_BUDGET // max(int(lengths[order[start]]), 1), order.size)
        while stop > start + 1 and (stop - start) * int(lengths[order[stop - 1]]) > HASH_BUDGET:
            stop = start + (stop - start) // 2
        stop = max(stop, start + 1)
        part = order[start:stop]
        out[part] = _polynomial([keys[i] for i in part], int(lengths[part].max()))
        start = stop
    return _mixed(out)


def _polynomial(texts: list[str], widest: int) -> np.ndarray:
    """Sum of each text's code points times ``_MULTIPLIER`` to the power of their position
    (from 1), modulo 2**64: the padding past a text's end adds nothing, so a text hashes
    alike beside texts of any length."""
    if widest == 0:
        return np.zeros(len(texts), dtype=np.uint64)
    points = np.array(texts, dtype=f"<U{widest}").view(np.uint32).reshape(len(texts), widest)
    powers = np.cumprod(np.full(widest, _MULTIPLIER, dtype=np.uint64))  # wraps, as wanted
    return np.asarray(points.astype(np.uint64) @ powers, dtype=np.uint64)


def _mixed(hashed: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every bit of the result depends on every bit of ``hashed``
    (the polynomial's low bits depend on the code points' low bits alone)."""
    hashed = hashed ^ (hashed >> np.uint64(30))
    hashed *= np.uint64(_MIX1)
    hashed ^= hashed >> np.uint64(27)
    hashed *= np.uint64(_MIX2)
    hashed ^= hashed >> np.uint64(31)
    return hashed


def _python_polynomial(text: str) -> int:
    """``_polynomial`` of one text in Python integers."""
    total, power, multiplier = 0, 1, int(_MULTIPLIER)
    for point in map(ord, text):
        power = power * multiplier & _MASK
        total = total + point * power & _MASK
    return total


def _mix(hashed: int) -> int:
    """``_mixed`` of one hash in Python integers."""
    hashed ^= hashed >> 30
    hashed = hashed * _MIX1 & _MASK
    hashed ^= hashed >> 27
    hashed = hashed * _MIX2 & _MASK
    return hashed ^ (hashed >> 31)


def _positions(hashed: np.ndarray, hashes: int, m: int) -> np.ndarray:
    """The filter's bits of each hash: ``hashes`` probes by double hashing (Kirsch and
    Mitzenmacher), the second hash the first mixed again, odd."""
    second = _mixed(hashed ^ np.uint64(_SECOND)) | np.uint64(1)
    probes = np.arange(hashes, dtype=np.uint64)
    return np.asarray((hashed[:, None] + probes[None, :] * second[:, None]) % np.uint64(m))
