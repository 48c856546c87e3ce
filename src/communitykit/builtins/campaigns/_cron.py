"""Five-field cron schedules in a time zone, DST-correct.

``minute hour day-of-month month day-of-week``, each ``*``, a number, a range
``1-5``, a step ``*/15`` or ``1-30/5``, or a comma list of those. Day-of-week is
0-6 with Sunday 0 (7 is also Sunday). When both day fields are restricted, a day
matching either runs (as in Vixie cron).

Moments are computed on the wall clock of the zone and returned in UTC. A wall
time that does not exist (the hour skipped when clocks spring forward) runs at
the first valid minute after it; a wall time that occurs twice (the hour
repeated when clocks fall back) runs once, at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import attrs

from communitykit._errors import ModelError

__all__ = ["CronSchedule"]

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SEARCH_DAYS = 366 * 8 + 2  # every day-of-month and weekday combination recurs within


def _number(text: str, field: str, low: int, high: int, whole: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ModelError(f"cron {whole!r}: {field} field has {text!r}, expected a number")
    value = int(text)
    if not low <= value <= high:
        raise ModelError(f"cron {whole!r}: {field} field has {value}, expected {low} to {high}")
    return value


def _field(text: str, field: str, low: int, high: int, whole: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            step = _number(step_text, field, 1, high - low + 1, whole)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start = _number(first, field, low, high, whole)
            end = _number(last, field, low, high, whole)
            if end < start:
                raise ModelError(
                    f"cron {whole!r}: {field} field has the range {body!r} running backwards"
                )
        else:
            start = _number(body, field, low, high, whole)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _resolve(wall: datetime, tz: tzinfo) -> datetime:
    """The UTC instant of a wall-clock time: its first occurrence, or the first
    valid minute after it when it does not exist."""
    probe = wall
    for _ in range(48 * 60):  # gaps are an hour, rarely a day
        instant = probe.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == probe:
            return instant
        probe += timedelta(minutes=1)
    raise ModelError(f"no valid wall-clock time near {wall.isoformat()} in {tz}")


@attrs.frozen(kw_only=True)
class CronSchedule:
    """A parsed cron expression; build it with :meth:`parse`."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Read ``text``; raises :class:`ModelError` naming the field that is wrong."""
        if not isinstance(text, str):
            raise ModelError(f"a cron expression must be a text, got {text!r}")
        parts = text.split()
        if len(parts) != 5:
            raise ModelError(
                f"cron {text!r}: expected 5 fields (minute hour day-of-month month "
                f"day-of-week), got {len(parts)}"
            )
        found = [
            _field(part, field, low, high, text)
            for part, (field, low, high) in zip(parts, _FIELDS, strict=True)
        ]
        minutes, hours, days, months, weekdays = found
        schedule = cls(
            text=text,
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=days,
            months=months,
            weekdays=frozenset(d % 7 for d in weekdays),
            days_restricted=parts[2] != "*",
            weekdays_restricted=parts[4] != "*",
        )
        if not (schedule.weekdays_restricted and schedule.days_restricted) and not any(
            day <= _DAYS_IN_MONTH[month - 1] for month in months for day in days
        ):
            raise ModelError(f"cron {text!r}: no month has such a day; it would never run")
        return schedule

    def matches_day(self, day: date) -> bool:
        """Whether the schedule runs on ``day`` (a wall-clock date)."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def matches(self, wall: datetime) -> bool:
        """Whether a wall-clock time is one of the schedule's times."""
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and self.matches_day(wall.date())
        )

    def _walls(self, start: date) -> Iterator[datetime]:
        day = start
        for _ in range(_SEARCH_DAYS):
            if self.matches_day(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        yield datetime.combine(day, time(hour, minute))
            day += timedelta(days=1)

    def next_after(self, after_utc: datetime, tz: tzinfo) -> datetime:
        """The first moment of the schedule strictly after ``after_utc``, in UTC."""
        if after_utc.tzinfo is None:
            raise ModelError(f"next_after needs an aware datetime, got {after_utc.isoformat()}")
        after = after_utc.astimezone(UTC)
        local = after.astimezone(tz).replace(tzinfo=None)
        # a wall time three hours before "after" on its date cannot come after it
        earliest = local - timedelta(hours=3)
        for wall in self._walls(local.date() - timedelta(days=1)):
            if wall < earliest:
                continue
            instant = _resolve(wall, tz)
            if instant > after:
                return instant
        raise ModelError(f"cron {self.text!r} has no moment after {after.isoformat()}")

    def latest_at_or_before(self, now_utc: datetime, tz: tzinfo) -> datetime | None:
        """The last moment of the schedule at or before ``now_utc`` (``None``: none
        within eight years)."""
        now = now_utc.astimezone(UTC)
        for back in (
            timedelta(minutes=1),
            timedelta(hours=1),
            timedelta(days=1),
            timedelta(days=8),
            timedelta(days=32),
            timedelta(days=367),
            timedelta(days=366 * 8),
        ):
            found = self.next_after(now - back, tz)
            if found > now:
                continue
            while True:
                later = self.next_after(found, tz)
                if later > now:
                    return found
                found = later
        return None
