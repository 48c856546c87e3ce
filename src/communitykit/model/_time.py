"""Time helpers for the model. Nothing here reads the clock: time is always passed in."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from communitykit._errors import ModelError

__all__ = ["community_day", "require_aware", "resolve_timezone"]


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
