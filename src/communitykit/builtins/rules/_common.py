"""What the built-in moderation rules share: reading their settings, and building
the verdicts they return."""

from __future__ import annotations

import re
import re._constants as _sre_constants  # type: ignore[import-not-found]
import re._parser as _sre  # type: ignore[import-not-found]
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from communitykit._errors import ModelError
from communitykit.model import parse_duration
from communitykit.model._moderation import SCOPE_KEYS

__all__ = ["Settings", "compile_pattern"]


class Settings:
    """A rule's settings, read key by key with a clear message for what is wrong.

    ``done()`` refuses keys no reader asked for (a typo in ``community.toml``
    fails loudly instead of being ignored). The scope keys every rule takes
    (``groups``, ``exempt_*``) and ``name`` are always allowed.
    """

    def __init__(self, settings: Mapping[str, Any], rule_type: str) -> None:
        self._settings = settings
        self._type = rule_type
        self._read: set[str] = {"name", *SCOPE_KEYS}

    def _fail(self, key: str, expected: str, value: object) -> ModelError:
        return ModelError(f"{self._type} rule: {key} must be {expected}, got {value!r}")

    def has(self, key: str) -> bool:
        self._read.add(key)
        return key in self._settings

    def raw(self, key: str, default: Any = None) -> Any:
        self._read.add(key)
        return self._settings.get(key, default)

    def name(self) -> str:
        value = self._settings.get("name", self._type)
        if not isinstance(value, str) or not re.match(r"^[a-z][a-z0-9_.-]*$", value):
            raise self._fail("name", "lowercase letters, digits, '.', '_' or '-'", value)
        return value

    def text(self, key: str, default: str) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self._fail(key, "a text", value)
        return value

    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.raw(key, default)
        if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
            expected = f"a whole number >= {minimum}" + (
                f" and <= {maximum}" if maximum is not None else ""
            )
            raise self._fail(key, expected, value)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if type(value) is not bool:
            raise self._fail(key, "true or false", value)
        return value

    def duration(self, key: str, default: timedelta) -> timedelta:
        value = self.raw(key)
        if value is None:
            return default
        try:
            return parse_duration(value, key)
        except ModelError as exc:
            raise ModelError(f"{self._type} rule: {exc}") from None

    def texts(self, key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = self.raw(key, None)
        if value is None:
            return tuple(default)
        if isinstance(value, str):
            return (value,)
        if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise self._fail(key, "a list of texts", value)

    def table(self, key: str) -> Mapping[str, Any]:
        value = self.raw(key, None)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self._fail(key, "a table", value)
        return value

    def done(self) -> None:
        unknown = sorted(set(self._settings) - self._read)
        if unknown:
            raise ModelError(f"{self._type} rule: unknown settings: {', '.join(unknown)}")


def compile_pattern(pattern: str, what: str) -> re.Pattern[str]:
    """A case-insensitive regular expression, with a clear message when it is broken.

    A pattern with a repetition inside a repetition (``(\\w+\\s?)+``) is refused: on
    a text it almost matches it backtracks for seconds, minutes, years, and the
    community would wait for it. Such a pattern can always be written without
    the nesting.
    """
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ModelError(f"{what}: {pattern!r} is not a valid pattern ({exc})") from None
    if _nested_repeat(_sre.parse(pattern, re.IGNORECASE)):
        raise ModelError(
            f"{what}: {pattern!r} repeats a group that itself repeats; such a pattern can "
            "take exponential time on some texts: write it without the nesting"
        )
    return compiled


_REPEATS = (_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT, _sre_constants.POSSESSIVE_REPEAT)
_MANY = 16  # a repetition bounded by more than this many counts as unbounded


def _nested_repeat(parsed: Any, inside: bool = False) -> bool:
    """Whether a parsed pattern repeats (unboundedly) something that repeats."""
    for op, args in parsed:
        if op in _REPEATS:
            _low, high, sub = args
            many = high == _sre_constants.MAXREPEAT or high > _MANY
            if (many and inside) or _nested_repeat(sub, inside or many):
                return True
            continue
        if op is _sre_constants.SUBPATTERN:
            subs = [args[-1]]
        elif op is _sre_constants.BRANCH:
            subs = list(args[1])
        elif op in (_sre_constants.ASSERT, _sre_constants.ASSERT_NOT):
            subs = [args[1]]
        else:
            continue
        if any(_nested_repeat(sub, inside) for sub in subs):
            return True
    return False
