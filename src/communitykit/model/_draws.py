"""Verifiable draws and red-packet splits, from hashes only.

A giveaway publishes ``commitment(seed)`` (the SHA-256 hex of the seed) before
anyone enters, and the seed after the draw, so anyone can recompute the draw:
:func:`draw` picks winners from the eligible member ids with a generator built
from SHA-256 alone (no dependence on Python's ``random``), and :func:`verify`
checks a published result.

The generator: the key is ``sha256(seed + "\\x1f" + ",".join(sorted ids))``;
block ``i`` is ``sha256(key + i as 8 big-endian bytes)`` for ``i = 0, 1, ...``,
and the blocks are read as one stream of bytes. A number below ``n`` takes the
fewest bytes holding ``n - 1``, masked to its bit length, read big-endian, and
is drawn again while it is ``n`` or more (no modulo bias). Winners are the first
``k`` places of a Fisher-Yates shuffle of the sorted ids: for place ``i``, swap
it with place ``i + below(len - i)``.

:func:`split` divides a red packet's points: ``n - 1`` distinct cut points in
``1 .. total - 1`` drawn from the same kind of stream (keyed by
``sha256("split" + "\\x1f" + seed)``), and the amounts are the gaps between
``0``, the sorted cuts and ``total``: they sum to ``total`` and each is at
least 1.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["commitment", "draw", "split", "verify", "verify_draw"]


def commitment(seed: str) -> str:
    """The SHA-256 hex of a seed: published before a draw, it binds the seed."""
    return hashlib.sha256(seed.encode()).hexdigest()


class _Stream:
    """Bytes from successive SHA-256 counter blocks of a key."""

    __slots__ = ("_buffer", "_counter", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._counter = 0
        self._buffer = b""

    def take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            block = hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._buffer += block
            self._counter += 1
        taken, self._buffer = self._buffer[:size], self._buffer[size:]
        return taken

    def below(self, n: int) -> int:
        """A uniform whole number in ``[0, n)`` (rejection sampling)."""
        if n <= 0:
            raise ValueError(f"below() needs a positive bound, got {n}")
        if n == 1:
            return 0
        bits = (n - 1).bit_length()
        size = (bits + 7) // 8
        mask = (1 << bits) - 1
        while True:
            value = int.from_bytes(self.take(size), "big") & mask
            if value < n:
                return value


def _draw_key(seed: str, ids: Sequence[str]) -> bytes:
    return hashlib.sha256((seed + "\x1f" + ",".join(ids)).encode()).digest()


def draw(seed: str, eligible: Iterable[str], k: int) -> list[str]:
    """``k`` winners (in order of the draw) from ``eligible``, without replacement.

    The eligible ids are deduplicated and sorted first, so their order does not
    matter. Fewer than ``k`` eligible: every one of them wins, in drawn order.
    """
    if k < 0:
        raise ValueError(f"a draw needs k >= 0 winners, got {k}")
    ids = sorted(set(eligible))
    stream = _Stream(_draw_key(seed, ids))
    places = list(ids)
    count = min(k, len(places))
    for i in range(count):
        j = i + stream.below(len(places) - i)
        places[i], places[j] = places[j], places[i]
    return places[:count]


def verify(seed: str, committed: str, eligible: Iterable[str], winners: Sequence[str]) -> bool:
    """Whether ``seed`` matches the published commitment and yields exactly ``winners``."""
    if commitment(seed) != committed.strip().lower():
        return False
    return draw(seed, eligible, len(winners)) == list(winners)


def verify_draw(
    seed: str, committed: str, eligible_file_lines: Iterable[str], winners: Sequence[str]
) -> tuple[bool, str]:
    """:func:`verify` for a command line: the eligible ids come one per line (blank
    lines and lines starting with ``#`` are skipped); returns the verdict and a
    sentence saying why."""
    eligible = []
    for line in eligible_file_lines:
        text = line.strip()
        if text and not text.startswith("#"):
            eligible.append(text)
    wanted = [w.strip() for w in winners if w.strip()]
    if commitment(seed) != committed.strip().lower():
        return False, "the seed does not match the commitment (its SHA-256 differs)"
    if len(set(wanted)) != len(wanted):
        return False, "the winners list names a member twice"
    ids = sorted(set(eligible))
    outside = [w for w in wanted if w not in set(ids)]
    if outside:
        return False, f"not in the eligible list: {', '.join(outside)}"
    expected = draw(seed, ids, len(wanted))
    if expected != wanted:
        return False, (
            f"the draw over {len(ids)} eligible members gives {', '.join(expected) or 'nobody'}, "
            f"not {', '.join(wanted) or 'nobody'}"
        )
    return True, (
        f"verified: the seed matches the commitment and the draw over {len(ids)} eligible "
        f"members gives {', '.join(wanted) or 'nobody'}"
    )


def _cuts(stream: _Stream, total: int, count: int) -> Iterator[int]:
    """``count`` distinct numbers in ``1 .. total - 1``."""
    chosen: set[int] = set()
    while len(chosen) < count:
        chosen.add(1 + stream.below(total - 1))
    return iter(chosen)


def split(total: int, n: int, seed: str) -> list[int]:
    """Divide ``total`` points into ``n`` random amounts of at least 1 each.

    Deterministic from ``seed``; the amounts sum to ``total`` exactly.
    """
    if type(total) is not int or type(n) is not int or n < 1 or total < n:
        raise ValueError(f"split needs 1 <= n <= total, got total={total!r}, n={n!r}")
    stream = _Stream(hashlib.sha256(("split\x1f" + seed).encode()).digest())
    gaps = total - 1
    wanted = n - 1
    if wanted * 2 <= gaps:
        cuts = set(_cuts(stream, total, wanted))
    else:  # most places are cuts: draw the few that are not
        skipped = set(_cuts(stream, total, gaps - wanted))
        cuts = set(range(1, total)) - skipped
    points = [0, *sorted(cuts), total]
    return [b - a for a, b in itertools.pairwise(points)]
