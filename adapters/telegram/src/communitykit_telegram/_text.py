"""Message text as Telegram counts it: UTF-16 code units, and long texts split in parts.

Telegram measures a message (at most 4096 characters) and the ``offset`` and
``length`` of its entities in UTF-16 code units: an emoji outside the Basic
Multilingual Plane (😀, 🎉) counts 2, a CJK character 1. :func:`split_text`
cuts a text longer than the limit into parts that each fit, at the best
boundary it can find — a paragraph, then a line, then a space, and only then
anywhere (never inside a character, a surrogate pair or an emoji sequence) —
and moves the entities along: each part gets the entities (or the pieces of
them) that fall in it, with offsets counted from the part's start.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["MAX_MESSAGE_LENGTH", "Part", "split_text", "utf16_len"]

#: The longest text one Telegram message may carry, in UTF-16 code units.
MAX_MESSAGE_LENGTH = 4096

_ZWJ = "\u200d"


def utf16_len(text: str) -> int:
    """The length of ``text`` in UTF-16 code units (what Telegram counts)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


@attrs.frozen
class Part:
    """One message of a split text: its text and its entities (offsets from its start)."""

    text: str
    entities: tuple[Mapping[str, Any], ...] = ()


def _units(text: str) -> list[int]:
    """``units[i]``: UTF-16 code units before code point ``i`` (``len(text) + 1`` values)."""
    units = [0] * (len(text) + 1)
    total = 0
    for i, char in enumerate(text):
        total += 2 if ord(char) > 0xFFFF else 1
        units[i + 1] = total
    return units


def _joined(before: str, after: str) -> bool:
    """Whether a cut between ``before`` and ``after`` would break a visible character."""
    code = ord(after)
    if after == _ZWJ or before == _ZWJ:
        return True
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:  # variation selectors
        return True
    if 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:  # skin tones, tag sequences
        return True
    if 0x1F1E6 <= code <= 0x1F1FF and 0x1F1E6 <= ord(before) <= 0x1F1FF:  # a flag's halves
        return True
    return unicodedata.combining(after) != 0 or after == "\u20e3"  # keycap


def _hard_cut(text: str, start: int, end: int) -> int:
    """``end`` moved back (a little) so that no visible character is cut in two."""
    cut = end
    for _ in range(32):
        if cut - 1 <= start or not _joined(text[cut - 1], text[cut]):
            break
        cut -= 1
    if cut <= start or _joined(text[cut - 1], text[cut]):
        return end  # one enormous cluster: cut it anyway, between code points
    # a flag is a pair of regional indicators: never leave one alone
    run = 0
    while cut - 1 - run >= start and 0x1F1E6 <= ord(text[cut - 1 - run]) <= 0x1F1FF:
        run += 1
    if run % 2 == 1 and cut - 1 > start:
        cut -= 1
    return cut


def _boundary(text: str, start: int, end: int, units: Sequence[int], limit: int) -> int:
    """Where to end a part that may run from ``start`` up to ``end`` (exclusive)."""
    least = units[start] + limit // 2  # a boundary that leaves a part at least half full
    for separator in ("\n\n", "\n"):
        # a separator starting at ``end`` at the latest: the part text[start:cut] fits
        cut = text.rfind(separator, start + 1, end + len(separator))
        if cut > start and units[cut] >= least:
            return cut
    for cut in range(end, start, -1):
        if text[cut].isspace():
            if units[cut] >= least:
                return cut
            break
    return _hard_cut(text, start, end)


def _clip(
    entities: Iterable[Mapping[str, Any]], begin: int, finish: int
) -> tuple[Mapping[str, Any], ...]:
    """The entities within UTF-16 units ``[begin, finish)``, offsets from ``begin``."""
    clipped: list[Mapping[str, Any]] = []
    for entity in entities:
        offset, length = int(entity["offset"]), int(entity["length"])
        low, high = max(offset, begin), min(offset + length, finish)
        if high > low:
            clipped.append({**entity, "offset": low - begin, "length": high - low})
    return tuple(clipped)


def split_text(
    text: str,
    limit: int = MAX_MESSAGE_LENGTH,
    entities: Iterable[Mapping[str, Any]] = (),
) -> list[Part]:
    """``text`` as messages of at most ``limit`` UTF-16 code units each.

    A text that fits is one part, unchanged. A longer one is cut at paragraph,
    line or word boundaries (one that leaves the part at least half full), else
    between two visible characters; the whitespace at each cut is dropped (Telegram
    trims it anyway). ``entities`` (Telegram ``MessageEntity`` objects with
    ``offset`` and ``length`` in UTF-16 code units) follow their text; one that
    spans a cut is split in two.
    """
    if limit < 2:
        raise ValueError(f"a message limit is at least 2 UTF-16 code units, got {limit}")
    entities = tuple(entities)
    units = _units(text)
    if units[-1] <= limit:
        return [Part(text, entities)]
    parts: list[Part] = []
    start, size = 0, len(text)
    while True:
        while start < size and text[start].isspace():
            start += 1
        if start >= size:
            return parts
        # the furthest code point index ``end`` with units[end] - units[start] <= limit
        end = bisect.bisect_right(units, units[start] + limit, lo=start) - 1
        cut = size if end >= size else _boundary(text, start, end, units, limit)
        stop = cut
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        parts.append(Part(text[start:stop], _clip(entities, units[start], units[stop])))
        if cut >= size:
            return parts
        start = cut
