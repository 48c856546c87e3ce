"""The days a campaign remembers about a member, for the report's funnels.

A campaign that answers "did this member do it on one of these days" keeps the
local days (ISO text, in its time zone) on which it happened, as check-in does:
the days of the last ``HISTORY_DAYS`` before the latest one, sorted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

__all__ = ["HISTORY_DAYS", "any_in", "remember_day", "remembered_days"]

HISTORY_DAYS = 62  # how far back before the latest day the remembered days reach


def remembered_days(value: object) -> list[str]:
    """The ISO days of a state's field (what is not an ISO day is left out)."""
    if not isinstance(value, list | tuple):
        return []
    return [d for d in value if isinstance(d, str) and _is_day(d)]


def _is_day(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def remember_day(value: object, day: date) -> list[str]:
    """The days of ``value`` with ``day`` added: those of the ``HISTORY_DAYS``
    before the latest of them, sorted, each once."""
    days = {*remembered_days(value), day.isoformat()}
    first = (date.fromisoformat(max(days)) - timedelta(days=HISTORY_DAYS)).isoformat()
    return sorted(d for d in days if d >= first)


def any_in(days: Iterable[str | None], keys: set[str]) -> bool:
    """Whether one of ``days`` is one of ``keys`` (ISO days)."""
    return any(d in keys for d in days if d is not None)
