"""Time helpers for the model. Nothing here reads the clock: time is always passed in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from communitykit._errors import ModelError

__all__ = ["community_day", "epoch_us", "iso_text", "require_aware", "resolve_timezone"]


@lru_cache(maxsize=64)
def resolve_timezone(name: str) -> ZoneInfo:
    """Return the IANA time zone ``name`` (e.g. ``"Asia/Shanghai"``).

    Raises :class:`ModelError` naming the zone when it is unknown.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ModelError(
            f"unknown time zone {name!r}: use an IANA name such as 'Asia/Shanghai' "
            "or 'Europe/Berlin'"
        ) from exc


def require_aware(name: str, value: datetime) -> None:
    """Raise :class:`ModelError` when ``value`` has no UTC offset."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ModelError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")


def aware_validator(_instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: an optional datetime must carry a UTC offset."""
    if value is not None:
        require_aware(attribute.name, value)


def community_day(at: datetime, tz: tzinfo) -> date:
    """The calendar day of ``at`` in the community's time zone ``tz`` (DST included)."""
    return at.astimezone(tz).date()


# The text and epoch microseconds of recent instants, by the datetime object
# itself. A datetime is usually written several times (an event's time is also
# its credits' and its member's last activity) and ``isoformat`` with an offset
# costs microseconds. The key is the object's id, the value holds the object, so
# an id is never reused while its entry lives; equal instants with different
# offsets are different objects and never share a text.
_TEXTS: dict[int, tuple[datetime, str]] = {}
_MICROS: dict[int, tuple[datetime, int]] = {}
_CACHED = 4096
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def iso_text(at: datetime) -> str:
    """``at.isoformat()``, remembered for the same datetime object."""
    hit = _TEXTS.get(id(at))
    if hit is not None and hit[0] is at:
        return hit[1]
    text = at.isoformat()
    if len(_TEXTS) >= _CACHED:
        _TEXTS.clear()
    _TEXTS[id(at)] = (at, text)
    return text


def epoch_us(at: datetime) -> int:
    """The aware instant ``at`` as whole microseconds since the Unix epoch,
    remembered for the same datetime object."""
    hit = _MICROS.get(id(at))
    if hit is not None and hit[0] is at:
        return hit[1]
    micros = (at - _EPOCH) // _ONE_US
    if len(_MICROS) >= _CACHED:
        _MICROS.clear()
    _MICROS[id(at)] = (at, micros)
    return micros
