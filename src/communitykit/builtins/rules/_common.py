"""What the built-in moderation rules share: reading their settings, and building
the verdicts they return."""

from __future__ import annotations

import re
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

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self.raw(key, default)
        if type(value) is not int or value < minimum:
            raise self._fail(key, f"a whole number >= {minimum}", value)
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
    """A case-insensitive regular expression, with a clear message when it is broken."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ModelError(f"{what}: {pattern!r} is not a valid pattern ({exc})") from None
