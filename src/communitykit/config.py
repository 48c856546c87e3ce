"""Load and validate ``community.toml``, the configuration of one community.

:func:`load_config` reads a file, :func:`parse_config` a string; both return a
frozen :class:`CommunityConfig` or raise :class:`ConfigError`. Nothing else comes
out for bad input: a syntax error, a wrong type, an unknown key, a missing
environment variable or a broken domain rule each become one ``ConfigError``
whose message is one line naming the file, the dotted key path and what was
expected, for example::

    community.toml: tiers.ladder[1].threshold: expected a whole number >= 0, found "ten"

Array items are counted from 0 in key paths (``groups[0]`` is the first group).

Every string value may use ``${NAME}`` or ``${NAME:-default}`` to take an
environment variable (the default applies when the variable is unset or empty);
``$${`` is a literal ``${``. Values are never coerced: ``"10"`` is not a number
and ``true`` is not 1.

Secrets stay secret: a platform ``token`` and every platform, rule or campaign
setting whose name says it is a secret (see :func:`_is_secret_name`) is held as a
:class:`~communitykit.Secret`, and no error message ever shows a secret value.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from decimal import InvalidOperation as DecimalError
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import attrs

from communitykit._errors import CommunityKitError, ModelError
from communitykit._plugin_types import PlatformSettings
from communitykit._secret import Secret
from communitykit.model._community import Community, Group
from communitykit.model._ledger import MAX_POINTS
from communitykit.model._lifecycle import LifecycleSettings
from communitykit.model._segments import (
    BUILTIN_SEGMENTS,
    BUILTIN_TYPES,
    Expr,
    SegmentError,
    builtin_segment,
    parse_expression,
)
from communitykit.model._tiers import Tier, TierLadder
from communitykit.model._time import resolve_timezone

__all__ = [
    "AutoTagConfig",
    "CommunityConfig",
    "ConfigError",
    "PluginConfig",
    "PointsConfig",
    "SegmentConfig",
    "default_config",
    "load_config",
    "parse_config",
]

#: The longest span, in days, a day count in the file may have (about 100 years).
MAX_DAYS: Final = 36_500
#: The largest tier multiplier the file may set.
MAX_MULTIPLIER: Final = Decimal(1000)

_KeyPath = tuple[str | int, ...]


# --------------------------------------------------------------------------- errors


class ConfigError(CommunityKitError):
    """``community.toml`` cannot be read, or says something that cannot be.

    ``path`` is the file as it was given, ``key`` the dotted key path of the
    offending value (``"tiers.ladder[1].threshold"``; ``None`` when the problem is
    the file itself), ``expected`` and ``found`` describe the value when that is
    the problem (``None`` otherwise), ``detail`` is the message after the key and
    ``line`` the line of a TOML syntax error. The message is one line and never
    contains a secret value.
    """

    def __init__(
        self,
        path: str,
        key: str | None = None,
        *,
        expected: str | None = None,
        found: str | None = None,
        detail: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = path
        self.key = key
        self.expected = expected
        self.found = found
        self.line = line
        if detail is None:
            detail = f"expected {expected}" if expected is not None else "invalid value"
            if found is not None:
                detail += f", found {found}"
        self.detail = detail
        super().__init__(": ".join(part for part in (path, key, detail) if part is not None))

    def __reduce__(self) -> tuple[Callable[..., ConfigError], tuple[Any, ...]]:
        return _rebuild_error, (
            self.path,
            self.key,
            self.expected,
            self.found,
            self.detail,
            self.line,
        )


def _rebuild_error(
    path: str,
    key: str | None,
    expected: str | None,
    found: str | None,
    detail: str,
    line: int | None,
) -> ConfigError:
    return ConfigError(path, key, expected=expected, found=found, detail=detail, line=line)


# --------------------------------------------------------------------------- result types


def _read_only(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _platforms(value: Mapping[str, PlatformSettings]) -> Mapping[str, PlatformSettings]:
    return MappingProxyType(dict(value))


def _plugin_tuple(value: Iterable[PluginConfig]) -> tuple[PluginConfig, ...]:
    return tuple(value)


def _non_negative(_instance: Any, attribute: Any, value: int) -> None:
    if type(value) is not int or value < 0:
        raise ModelError(f"{attribute.name} must be a whole number >= 0, got {value!r}")


def _points_amount(_instance: Any, attribute: Any, value: int) -> None:
    _non_negative(_instance, attribute, value)
    if value > MAX_POINTS:
        raise ModelError(f"{attribute.name} must be at most {MAX_POINTS:,}, got {value:,}")


def _positive_or_none(_instance: Any, attribute: Any, value: int | None) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ModelError(f"{attribute.name} must be a whole number >= 1 or None, got {value!r}")


_URL_PASSWORD = re.compile(r"(://[^/?#@:]*:)[^/?#@]*@")


def _redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (``postgresql://u:***@host/db``)."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def _repr_url(url: str) -> str:
    return repr(_redact_url(url))


@attrs.frozen(kw_only=True)
class PointsConfig:
    """The ``[points]`` table: how many points chat activity earns, and for how long.

    ``message_daily_cap`` and ``reaction_daily_cap`` bound the points a member
    earns from each per community day (0: none at all); ``expire_after_days``
    makes credits expire (``None``: they never do).
    """

    message: int = attrs.field(default=1, validator=_points_amount)
    message_daily_cap: int = attrs.field(default=20, validator=_non_negative)
    reaction_received: int = attrs.field(default=1, validator=_points_amount)
    reaction_daily_cap: int = attrs.field(default=10, validator=_non_negative)
    expire_after_days: int | None = attrs.field(default=None, validator=_positive_or_none)


@attrs.frozen(kw_only=True)
class PluginConfig:
    """One ``[[rules]]`` or ``[[campaigns]]`` entry.

    ``settings`` holds every key of the entry except ``type`` and ``enabled``,
    read-only (tables are read-only mappings, arrays are tuples; secret-named
    settings are :class:`~communitykit.Secret`). ``key`` names the entry in
    messages (``"rules[2]"``).
    """

    type: str
    settings: Mapping[str, Any] = attrs.field(factory=dict, converter=_read_only)
    key: str
    enabled: bool = True


@attrs.frozen(kw_only=True)
class SegmentConfig:
    """One ``[segments.<name>]`` table: a segment defined by an expression
    (``where``) or by a segment ``type`` and its ``settings``; ``key`` names the
    table in messages (``"segments.engaged"``)."""

    name: str
    where: str | None = None
    type: str | None = None
    settings: Mapping[str, Any] = attrs.field(factory=dict, converter=_read_only)
    key: str

    @property
    def definition(self) -> str:
        """The definition as written: the expression, or the type and its settings."""
        if self.where is not None:
            return self.where
        shown = ", ".join(f"{key} = {value!r}" for key, value in self.settings.items())
        return f"type {self.type}" + (f" ({shown})" if shown else "")


@attrs.frozen(kw_only=True)
class AutoTagConfig:
    """One ``[[auto_tags]]`` entry: ``tag`` the members of a segment (named by
    ``segment`` or written inline as ``where``); with ``remove``, take the tag
    away from those who leave it."""

    tag: str
    segment: str | None = None
    where: str | None = None
    remove: bool = False
    key: str

    @property
    def expression(self) -> str:
        return self.where if self.where is not None else str(self.segment)


def _segment_map(value: Mapping[str, SegmentConfig]) -> Mapping[str, SegmentConfig]:
    return MappingProxyType(dict(value))


def _auto_tag_tuple(value: Iterable[AutoTagConfig]) -> tuple[AutoTagConfig, ...]:
    return tuple(value)


def default_ladder() -> TierLadder:
    """The ladder of a file without ``[[tiers.ladder]]``: one tier ``member`` from 0 points."""
    return TierLadder(tiers=[Tier(name="member", threshold=0)])


@attrs.frozen(kw_only=True)
class CommunityConfig:
    """A validated ``community.toml``.

    ``path`` is the absolute path of the file it was loaded from (``None`` when it
    was parsed from a string or built in code); ``store_url`` is where the
    community's data lives (relative SQLite paths already made absolute).
    """

    path: Path | None = None
    community: Community
    store_url: str = attrs.field(repr=_repr_url)
    platforms: Mapping[str, PlatformSettings] = attrs.field(factory=dict, converter=_platforms)
    points: PointsConfig = attrs.field(factory=PointsConfig)
    ladder: TierLadder = attrs.field(factory=default_ladder)
    rules: tuple[PluginConfig, ...] = attrs.field(default=(), converter=_plugin_tuple)
    campaigns: tuple[PluginConfig, ...] = attrs.field(default=(), converter=_plugin_tuple)
    lifecycle: LifecycleSettings = attrs.field(factory=LifecycleSettings)
    segments: Mapping[str, SegmentConfig] = attrs.field(factory=dict, converter=_segment_map)
    auto_tags: tuple[AutoTagConfig, ...] = attrs.field(default=(), converter=_auto_tag_tuple)

    @property
    def enabled_rules(self) -> tuple[PluginConfig, ...]:
        """The rules without ``enabled = false``, in file order."""
        return tuple(rule for rule in self.rules if rule.enabled)

    @property
    def enabled_campaigns(self) -> tuple[PluginConfig, ...]:
        """The campaigns without ``enabled = false``, in file order."""
        return tuple(campaign for campaign in self.campaigns if campaign.enabled)


# --------------------------------------------------------------------------- public functions


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> CommunityConfig:
    """Read and validate the configuration file at ``path``.

    ``environ`` supplies ``${NAME}`` values (default: ``os.environ``). A relative
    SQLite store path is taken relative to the file's folder. Raises
    :class:`ConfigError` for a missing or unreadable file and for any bad content.
    """
    shown = os.fspath(path)
    file = Path(shown).absolute()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(shown, detail="file not found") from None
    except IsADirectoryError:
        raise ConfigError(shown, detail="cannot read the file: it is a directory") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(shown, detail=f"cannot read the file: {reason}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            shown,
            detail=f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} "
            f"at offset {exc.start})",
        ) from None
    return _load(text, shown=shown, base_dir=file.parent, stem=file.stem, file=file, env=environ)


def parse_config(
    text: str,
    *,
    path: str = "community.toml",
    base_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> CommunityConfig:
    """Validate configuration ``text`` as if it were the file ``path``.

    ``path`` is only used in messages and for the default store file name;
    ``base_dir`` is the folder relative SQLite paths are taken from (default: the
    folder of ``path``, from the current directory). The result's ``path`` is
    ``None``.
    """
    folder = (Path(base_dir) if base_dir is not None else Path(path).parent).absolute()
    return _load(text, shown=path, base_dir=folder, stem=Path(path).stem, file=None, env=environ)


def default_config(name: str = "demo", store_url: str = "memory://") -> CommunityConfig:
    """The configuration of a file holding only ``[community]`` with ``name`` and ``store``.

    A relative SQLite path in ``store_url`` is taken from the current directory.
    Raises :class:`ConfigError` when ``name`` or ``store_url`` is not valid.
    """
    loader = _Loader(shown="<defaults>", base_dir=Path.cwd(), stem="community", environ={})
    return loader.build({"community": {"name": name, "store": store_url}}, file=None)


def _load(
    text: str,
    *,
    shown: str,
    base_dir: Path,
    stem: str,
    file: Path | None,
    env: Mapping[str, str] | None,
) -> CommunityConfig:
    loader = _Loader(
        shown=shown,
        base_dir=base_dir,
        stem=stem,
        environ=os.environ if env is None else env,
    )
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        raise ConfigError(shown, detail=f"TOML syntax error: {message}", line=line) from None
    except RecursionError:
        raise ConfigError(shown, detail="the document nests arrays or tables too deeply") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's limit on the digits of an int
            reason = "a whole number has too many digits"
        else:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(shown, detail=f"cannot read the TOML: {reason}") from None
    try:
        return loader.build(loader.interpolate(document, ()), file=file)
    except RecursionError:
        raise ConfigError(shown, detail="the document nests arrays or tables too deeply") from None


# --------------------------------------------------------------------------- rendering

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_MISSING: Final = object()


def _quote(text: str, limit: int = 60) -> str:
    """``text`` in double quotes on one line, control characters escaped, long text cut."""
    shown = text if len(text) <= limit else text[: limit - 3]
    out = []
    for char in shown:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
    if shown is text:
        return '"' + "".join(out) + '"'
    return '"' + "".join(out) + f'..." ({len(text)} characters)'


def _render_key(parts: _KeyPath) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if _BARE_KEY.fullmatch(part) else _quote(part, limit=40)
            out += f".{name}" if out else name
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    return "a value"


def _describe(value: Any, *, secret: bool = False) -> str:
    """What was found, for a message. A secret is described, never shown."""
    if value is _MISSING:
        return "nothing"
    if secret:
        if isinstance(value, str):
            count = len(value)
            return f"a string of {count} character{'' if count == 1 else 's'}"
        return _kind(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a number of more than 30 digits"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, datetime | date | time):
        return f"{_kind(value)} {value.isoformat()}"
    if isinstance(value, list):
        count = len(value)
        return f"an array of {count} item{'' if count == 1 else 's'}" if value else "an empty array"
    return _kind(value)


# --------------------------------------------------------------------------- secrets

_WORDS = re.compile(r"[^0-9A-Za-z]+|(?<=[a-z0-9])(?=[A-Z])")
_ANY_WORD = ("secret", "secrets", "password", "passwords", "passwd")
_LAST_WORD = ("token", "tokens", "key", "keys", "seed", "seeds")


def _is_secret_name(name: str) -> bool:
    """Whether a setting named ``name`` holds a secret.

    The name is split into words (at ``_``, ``-``, ``.`` and camelCase). It names a
    secret when any word ends with ``secret``, ``password`` or ``passwd``
    (``webhook_secret``, ``secret_path``, ``adminPassword``), or its last word
    ends with ``token``, ``key`` or ``seed`` (``bot_token``, ``api_key``,
    ``encodingAESKey``, ``apikey``, a giveaway's ``seed``); plurals count too. A
    setting named just ``key`` or ``keys`` is a name, not a secret; ``keywords``,
    ``token_url`` or ``tokenizer`` are not secrets either.
    """
    words = [word.lower() for word in _WORDS.split(name) if word]
    if not words:
        return False
    if any(word.endswith(_ANY_WORD) for word in words):
        return True
    return words not in (["key"], ["keys"]) and words[-1].endswith(_LAST_WORD)


def _secret_at(parts: _KeyPath) -> bool:
    """Whether the value at ``parts`` is a secret (its value is never shown)."""
    if len(parts) < 3 or parts[0] not in ("platforms", "rules", "campaigns"):
        return False
    return any(isinstance(part, str) and _is_secret_name(part) for part in parts[2:])


def _freeze(value: Any, secret: bool) -> Any:
    """A read-only copy: tables as read-only mappings, arrays as tuples, secrets wrapped."""
    if isinstance(value, dict):
        return MappingProxyType(
            {key: _freeze(item, secret or _is_secret_name(key)) for key, item in value.items()}
        )
    if isinstance(value, list):
        return tuple(_freeze(item, secret) for item in value)
    if secret and isinstance(value, str):
        return Secret(value)
    return value


# --------------------------------------------------------------------------- the loader

_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.S)
_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
_NAME_RULE = 'a lowercase name of letters, digits, ".", "_" or "-" starting with a letter'
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.S)
_STEM = re.compile(r"[\w.-]+")
_SPACE = re.compile(r"\s")

#: how deep one segment's definition may go through the segments it names
MAX_SEGMENT_DEPTH = 32

_TOP = (
    "community",
    "groups",
    "platforms",
    "points",
    "tiers",
    "rules",
    "campaigns",
    "lifecycle",
    "segments",
    "auto_tags",
)
_LIFECYCLE = ("new_days", "active_days", "churned_days", "recalled_days")
_AUTO_TAG = ("tag", "segment", "where", "remove")
_SEGMENT_NAME_RULE = 'lowercase letters, digits, ".", "_" or "-", starting with a letter'

_COMMUNITY = ("name", "purpose", "timezone", "store")
_GROUP = ("key", "platform", "id", "title", "size_cap", "overflow_order")
_POINTS = (
    "message",
    "message_daily_cap",
    "reaction_received",
    "reaction_daily_cap",
    "expire_after_days",
)
_TIERS = ("window_days", "grace_days", "ladder")
_TIER = (
    "name",
    "threshold",
    "multiplier",
    "min_tenure_days",
    "min_checkins",
    "requires_paid",
    "titles",
)


def _whole(minimum: int, maximum: int | None = None) -> str:
    if maximum is None:
        return f"a whole number >= {minimum}"
    return f"a whole number from {minimum} to {maximum}"


class _Loader:
    """Turns a parsed TOML document into a :class:`CommunityConfig`, or a ConfigError."""

    def __init__(
        self, *, shown: str, base_dir: Path, stem: str, environ: Mapping[str, str]
    ) -> None:
        self.shown = shown
        self.base_dir = base_dir
        self.stem = stem if _STEM.fullmatch(stem) else "community"
        self.environ = environ

    # ----------------------------------------------------------- errors

    def error(
        self,
        parts: _KeyPath,
        *,
        expected: str | None = None,
        found: str | None = None,
        detail: str | None = None,
    ) -> ConfigError:
        key = _render_key(parts) if parts else None
        return ConfigError(self.shown, key, expected=expected, found=found, detail=detail)

    def wrong(self, parts: _KeyPath, expected: str, value: Any) -> ConfigError:
        return self.error(
            parts, expected=expected, found=_describe(value, secret=_secret_at(parts))
        )

    def missing(self, parts: _KeyPath, expected: str) -> ConfigError:
        return self.error(
            parts, expected=expected, found="nothing", detail=f"missing; expected {expected}"
        )

    def check_keys(
        self, table: Mapping[str, Any], parts: _KeyPath, allowed: tuple[str, ...]
    ) -> None:
        for name, value in table.items():
            if name in allowed:
                continue
            what = "table" if not parts and isinstance(value, dict | list) else "key"
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = (
                f'did you mean "{close[0]}"?' if close else f"expected one of {', '.join(allowed)}"
            )
            raise self.error(
                (*parts, name),
                expected=f"one of {', '.join(allowed)}",
                found=_quote(name),
                detail=f"unknown {what}; {hint}",
            )

    # ----------------------------------------------------------- interpolation

    def interpolate(self, value: Any, parts: _KeyPath) -> Any:
        """``value`` with ``${NAME}`` placeholders in every string replaced."""
        if isinstance(value, str):
            return self.expand(value, parts)
        if isinstance(value, dict):
            return {key: self.interpolate(item, (*parts, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.interpolate(item, (*parts, index)) for index, item in enumerate(value)]
        return value

    def expand(self, text: str, parts: _KeyPath) -> str:
        if "${" not in text:
            return text
        secret = _secret_at(parts)
        usage = '"${NAME}" or "${NAME:-default}" (write "$${" for a literal "${")'

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            body = match.group(1)
            if body is None:
                raise self.error(
                    parts, expected=usage, found='a "${" without a closing "}"'
                ) from None
            variable = _VARIABLE.fullmatch(body)
            if variable is None or "${" in (variable.group(2) or ""):
                found = "an invalid placeholder" if secret else _quote("${" + body + "}")
                raise self.error(parts, expected=usage, found=found) from None
            name, default = variable.group(1), variable.group(2)
            value = self.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise self.error(
                        parts, detail=f"environment variable {name} is not set"
                    ) from None
                return default
            return value

        return _PLACEHOLDER.sub(replace, text)

    # ----------------------------------------------------------- typed reads

    def table(self, value: Any, parts: _KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.wrong(parts, "a table", value)
        return value

    def array_of_tables(self, value: Any, parts: _KeyPath) -> list[dict[str, Any]]:
        name = _render_key(parts)
        expected = f"an array of tables ([[{name}]])"
        if not isinstance(value, list):
            raise self.wrong(parts, expected, value)
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.wrong((*parts, index), f"a table ([[{name}]])", item)
        return value

    def integer(
        self,
        table: Mapping[str, Any],
        parts: _KeyPath,
        name: str,
        *,
        minimum: int,
        maximum: int | None = None,
        default: Any = _MISSING,
    ) -> Any:
        value = table.get(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.missing((*parts, name), _whole(minimum, maximum))
            return default
        if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
            raise self.wrong((*parts, name), _whole(minimum, maximum), value)
        return value

    def string(
        self,
        table: Mapping[str, Any],
        parts: _KeyPath,
        name: str,
        *,
        default: Any = _MISSING,
        non_empty: bool = False,
    ) -> Any:
        expected = "a non-empty string" if non_empty else "a string"
        value = table.get(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.missing((*parts, name), expected)
            return default
        if not isinstance(value, str) or (non_empty and not value.strip()):
            raise self.wrong((*parts, name), expected, value)
        return value

    def boolean(self, table: Mapping[str, Any], parts: _KeyPath, name: str, default: bool) -> bool:
        value = table.get(name, default)
        if not isinstance(value, bool):
            raise self.wrong((*parts, name), "true or false", value)
        return value

    def name(self, table: Mapping[str, Any], parts: _KeyPath, key: str, what: str) -> str:
        value = table.get(key, _MISSING)
        expected = f"{what} ({_NAME_RULE})"
        if value is _MISSING:
            raise self.missing((*parts, key), expected)
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise self.wrong((*parts, key), expected, value)
        return value

    # ----------------------------------------------------------- the document

    def build(self, document: Mapping[str, Any], *, file: Path | None) -> CommunityConfig:
        self.check_keys(document, (), _TOP)
        if "community" not in document:
            raise self.error(
                ("community",),
                expected='a [community] table with name = "..."',
                found="nothing",
                detail='missing; add a [community] table with name = "..."',
            )
        community_table = self.table(document["community"], ("community",))
        groups = self.groups(document.get("groups", []))
        community = self.community(community_table, groups)
        store_url = self.store(community_table)
        platforms = self.platforms(document.get("platforms", {}))
        points = self.points(document.get("points", {}))
        ladder = self.ladder(document.get("tiers", {}))
        group_keys = [group.key for group in groups]
        rules = self.plugins(document.get("rules", []), "rules", "rule", group_keys)
        campaigns = self.plugins(document.get("campaigns", []), "campaigns", "campaign", group_keys)
        lifecycle = self.lifecycle(document.get("lifecycle", {}))
        known = _KnownNames(
            tiers=frozenset(tier.name for tier in ladder.tiers), groups=frozenset(group_keys)
        )
        segments = self.segments(document.get("segments", {}), known)
        auto_tags = self.auto_tags(document.get("auto_tags", []), known.with_segments(segments))
        self.campaign_segments(campaigns, known.with_segments(segments))
        self.campaign_tiers(campaigns, [tier.name for tier in ladder.tiers])
        return CommunityConfig(
            path=file,
            community=community,
            store_url=store_url,
            platforms=platforms,
            points=points,
            ladder=ladder,
            rules=rules,
            campaigns=campaigns,
            lifecycle=lifecycle,
            segments=segments,
            auto_tags=auto_tags,
        )

    def community(self, table: dict[str, Any], groups: list[Group]) -> Community:
        parts: _KeyPath = ("community",)
        self.check_keys(table, parts, _COMMUNITY)
        name = self.string(table, parts, "name", non_empty=True)
        purpose = self.string(table, parts, "purpose", default="")
        timezone = self.string(table, parts, "timezone", default="UTC")
        try:
            resolve_timezone(timezone)
        except (ModelError, OSError):
            raise self.wrong(
                (*parts, "timezone"),
                'an IANA time zone name such as "Asia/Shanghai" or "UTC"',
                timezone,
            ) from None
        try:
            return Community(name=name, purpose=purpose, timezone=timezone, groups=groups)
        except ModelError as exc:
            raise self.error(parts, detail=str(exc)) from None

    def store(self, table: dict[str, Any]) -> str:
        parts: _KeyPath = ("community", "store")
        value: str | None = self.string(table, ("community",), "store", default=None)
        if value is None:
            return "sqlite:///" + (self.base_dir / f"{self.stem}.db").as_posix()
        expected = (
            'a store URL such as "sqlite:///community.db", "postgresql://host/db" or "memory://"'
        )
        match = _URL.fullmatch(value)
        if match is None:
            raise self.error(parts, expected=expected, found=_quote(_redact_url(value)))
        scheme, rest = match.group(1).lower(), match.group(2)
        if scheme == "memory":
            if rest:
                raise self.error(parts, expected='"memory://"', found=_quote(_redact_url(value)))
            return "memory://"
        if scheme.partition("+")[0] in ("postgresql", "postgres"):
            return value
        if scheme != "sqlite" and not scheme.startswith("sqlite+"):
            raise self.error(parts, expected=expected, found=_quote(_redact_url(value)))
        if rest == "":  # "sqlite://": an in-memory SQLite database
            return value
        if not rest.startswith("/"):
            raise self.error(
                parts,
                expected='a SQLite URL with three slashes, such as "sqlite:///community.db"',
                found=_quote(value),
            )
        location, question, query = rest[1:].partition("?")
        if location in ("", ":memory:") or location.startswith("file:"):
            return value
        file = Path(location)
        if not file.is_absolute():
            file = Path(os.path.normpath(self.base_dir / file))
        return f"{match.group(1)}:///{file.as_posix()}{question}{query}"

    def groups(self, value: Any) -> list[Group]:
        groups: list[Group] = []
        owners: dict[str, int] = {}
        ids: dict[tuple[str, str], int] = {}
        for index, table in enumerate(self.array_of_tables(value, ("groups",))):
            parts: _KeyPath = ("groups", index)
            self.check_keys(table, parts, _GROUP)
            key = self.string(table, parts, "key", non_empty=True)
            platform = self.name(table, parts, "platform", "a platform name")
            group_id = table.get("id", _MISSING)
            if group_id is _MISSING:
                raise self.missing((*parts, "id"), "the platform's id for the group, a string")
            if isinstance(group_id, int | float) and not isinstance(group_id, bool):
                raise self.wrong(
                    (*parts, "id"), f'a string (write ids in quotes: id = "{group_id}")', group_id
                )
            group_id = self.string(table, parts, "id", non_empty=True)
            title = self.string(table, parts, "title", default="")
            size_cap = self.integer(table, parts, "size_cap", minimum=1, default=None)
            order = table.get("overflow_order", 0)
            if type(order) is not int:
                raise self.wrong((*parts, "overflow_order"), "a whole number", order)
            if key in owners:
                raise self.error(
                    (*parts, "key"),
                    expected="a key no other group has",
                    found=_quote(key),
                    detail=f"the key {_quote(key)} is already used by groups[{owners[key]}]",
                )
            if (platform, group_id) in ids:
                other = ids[(platform, group_id)]
                raise self.error(
                    (*parts, "id"),
                    expected=f"an id no other {platform} group has",
                    found=_quote(group_id),
                    detail=f"{platform} id {_quote(group_id)} is already used by groups[{other}]",
                )
            owners[key] = index
            ids[(platform, group_id)] = index
            try:
                groups.append(
                    Group(
                        key=key,
                        platform=platform,
                        group_id=group_id,
                        title=title,
                        size_cap=size_cap,
                        overflow_order=order,
                    )
                )
            except ModelError as exc:
                raise self.error(parts, detail=str(exc)) from None
        return groups

    def platforms(self, value: Any) -> dict[str, PlatformSettings]:
        result: dict[str, PlatformSettings] = {}
        for name, raw in self.table(value, ("platforms",)).items():
            parts: _KeyPath = ("platforms", name)
            if not _NAME.fullmatch(name):
                raise self.error(
                    parts, expected=f"a platform name ({_NAME_RULE})", found=_quote(name)
                )
            table = self.table(raw, parts)
            token: Secret | None = None
            if "token" in table:
                value_ = table["token"]
                expected = "a token: a non-empty string without spaces or line breaks"
                if not isinstance(value_, str) or not value_ or _SPACE.search(value_):
                    raise self.wrong((*parts, "token"), expected, value_)
                token = Secret(value_)
            api_base = self.string(table, parts, "api_base", default=None)
            if api_base is not None and not re.fullmatch(r"https?://[^\s/]+\S*", api_base):
                raise self.wrong(
                    (*parts, "api_base"),
                    'an http:// or https:// URL such as "https://api.telegram.org"',
                    api_base,
                )
            options = {
                key: _freeze(item, _is_secret_name(key))
                for key, item in table.items()
                if key not in ("token", "api_base")
            }
            result[name] = PlatformSettings(
                name=name, token=token, api_base=api_base, options=options
            )
        return result

    def points(self, value: Any) -> PointsConfig:
        parts: _KeyPath = ("points",)
        table = self.table(value, parts)
        self.check_keys(table, parts, _POINTS)
        return PointsConfig(
            message=self.integer(table, parts, "message", minimum=0, maximum=MAX_POINTS, default=1),
            message_daily_cap=self.integer(
                table, parts, "message_daily_cap", minimum=0, default=20
            ),
            reaction_received=self.integer(
                table, parts, "reaction_received", minimum=0, maximum=MAX_POINTS, default=1
            ),
            reaction_daily_cap=self.integer(
                table, parts, "reaction_daily_cap", minimum=0, default=10
            ),
            expire_after_days=self.integer(
                table, parts, "expire_after_days", minimum=1, maximum=MAX_DAYS, default=None
            ),
        )

    def ladder(self, value: Any) -> TierLadder:
        parts: _KeyPath = ("tiers",)
        table = self.table(value, parts)
        self.check_keys(table, parts, _TIERS)
        window = self.integer(
            table, parts, "window_days", minimum=1, maximum=MAX_DAYS, default=None
        )
        grace = self.integer(table, parts, "grace_days", minimum=0, maximum=MAX_DAYS, default=30)
        tiers = self.tiers(table["ladder"]) if "ladder" in table else list(default_ladder().tiers)
        try:
            return TierLadder(
                tiers=tiers,
                window=None if window is None else timedelta(days=window),
                grace=timedelta(days=grace),
            )
        except ModelError as exc:
            raise self.error((*parts, "ladder"), detail=str(exc)) from None

    def tiers(self, value: Any) -> list[Tier]:
        tiers: list[Tier] = []
        names: dict[str, int] = {}
        entries = self.array_of_tables(value, ("tiers", "ladder"))
        if not entries:
            raise self.wrong(("tiers", "ladder"), "at least one tier", entries)
        for index, table in enumerate(entries):
            parts: _KeyPath = ("tiers", "ladder", index)
            self.check_keys(table, parts, _TIER)
            name = self.string(table, parts, "name", non_empty=True)
            threshold = self.integer(table, parts, "threshold", minimum=0)
            multiplier = self.multiplier(table, parts)
            tenure = self.integer(table, parts, "min_tenure_days", minimum=0, default=0)
            checkins = self.integer(table, parts, "min_checkins", minimum=0, default=0)
            paid = self.boolean(table, parts, "requires_paid", False)
            titles = self.titles(table.get("titles", {}), (*parts, "titles"))
            if name in names:
                raise self.error(
                    (*parts, "name"),
                    expected="a name no other tier has",
                    found=_quote(name),
                    detail=f"the name {_quote(name)} is already used by "
                    f"tiers.ladder[{names[name]}]",
                )
            names[name] = index
            if index == 0:
                why = "the lowest tier admits everyone, so every member has a tier"
                for key, plain in (
                    ("threshold", threshold),
                    ("min_tenure_days", tenure),
                    ("min_checkins", checkins),
                ):
                    if plain != 0:
                        raise self.wrong((*parts, key), f"0 ({why})", plain)
                if paid:
                    raise self.wrong((*parts, "requires_paid"), f"false ({why})", paid)
            else:
                below = tiers[-1]
                if threshold <= below.threshold:
                    raise self.wrong(
                        (*parts, "threshold"),
                        f"a threshold above {below.threshold} "
                        f"(the threshold of {_quote(below.name)}, the tier below)",
                        threshold,
                    )
            try:
                tiers.append(
                    Tier(
                        name=name,
                        threshold=threshold,
                        multiplier=multiplier,
                        titles=titles,
                        min_tenure_days=tenure,
                        min_checkins=checkins,
                        requires_paid=paid,
                    )
                )
            except ModelError as exc:
                raise self.error(parts, detail=str(exc)) from None
        return tiers

    def multiplier(self, table: Mapping[str, Any], parts: _KeyPath) -> Decimal:
        value = table.get("multiplier", _MISSING)
        if value is _MISSING:
            return Decimal(1)
        expected = f'a decimal number from 0 to {MAX_MULTIPLIER}, such as 1.5 or "1.2"'
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.wrong((*parts, "multiplier"), expected, value)
        try:
            number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except (DecimalError, ValueError):
            raise self.wrong((*parts, "multiplier"), expected, value) from None
        if not number.is_finite() or number < 0 or number > MAX_MULTIPLIER:
            raise self.wrong((*parts, "multiplier"), expected, value)
        return number

    def titles(self, value: Any, parts: _KeyPath) -> dict[str, str]:
        table = self.table(value, parts)
        for platform, title in table.items():
            if not isinstance(title, str):
                raise self.wrong((*parts, platform), "a title (a string)", title)
        return table

    def plugins(
        self, value: Any, section: str, what: str, group_keys: list[str]
    ) -> tuple[PluginConfig, ...]:
        found: list[PluginConfig] = []
        for index, table in enumerate(self.array_of_tables(value, (section,))):
            parts: _KeyPath = (section, index)
            kind = self.name(table, parts, "type", f"the {what} type")
            enabled = self.boolean(table, parts, "enabled", True)
            owner = None
            if section == "campaigns":
                owner = f"campaign {_quote(str(table.get('name', kind)))} (type {kind})"
            if "groups" in table:
                self.group_refs(table["groups"], (*parts, "groups"), group_keys, owner)
            if owner is not None:
                self.campaign_group_refs(table, parts, group_keys, owner)
            settings = {
                key: _freeze(item, _is_secret_name(key))
                for key, item in table.items()
                if key not in ("type", "enabled")
            }
            found.append(
                PluginConfig(type=kind, settings=settings, key=_render_key(parts), enabled=enabled)
            )
        return tuple(found)

    def campaign_group_refs(
        self, table: Mapping[str, Any], parts: _KeyPath, group_keys: list[str], owner: str
    ) -> None:
        """A campaign's other settings naming groups: ``group`` and ``<what>_group``
        (a group key), ``<what>_groups`` (an array of them)."""
        for key, item in table.items():
            if key == "group" or key.endswith("_group"):
                if isinstance(item, str) and item.strip():
                    self.group_ref(item.strip(), (*parts, key), group_keys, owner)
            elif key.endswith("_groups") and isinstance(item, list):
                self.group_refs(item, (*parts, key), group_keys, owner)

    def group_refs(
        self, value: Any, parts: _KeyPath, group_keys: list[str], owner: str | None = None
    ) -> None:
        expected = "an array of group keys"
        if not isinstance(value, list):
            raise self.wrong(parts, expected, value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.wrong((*parts, index), "a group key (a string)", item)
            self.group_ref(item, (*parts, index), group_keys, owner)

    def group_ref(
        self, item: str, parts: _KeyPath, group_keys: list[str], owner: str | None = None
    ) -> None:
        """``item`` must be the key of a configured group (``owner``: the campaign
        the setting is of, named in the message)."""
        if item in group_keys:
            return
        close = difflib.get_close_matches(item, group_keys, n=1)
        if close:
            hint = f'did you mean "{close[0]}"?'
        elif group_keys:
            hint = "the groups are " + ", ".join(_quote(key) for key in group_keys)
        else:
            hint = "no [[groups]] are configured"
        where = f" in {owner}" if owner is not None else ""
        raise self.error(
            parts,
            expected="the key of a [[groups]] entry",
            found=_quote(item),
            detail=f"unknown group {_quote(item)}{where}; {hint}",
        )

    # ----------------------------------------------------------- lifecycle and segments

    def lifecycle(self, value: Any) -> LifecycleSettings:
        parts: _KeyPath = ("lifecycle",)
        table = self.table(value, parts)
        self.check_keys(table, parts, _LIFECYCLE)
        defaults = LifecycleSettings()
        numbers = {
            name: self.integer(
                table,
                parts,
                name,
                minimum=0 if name in ("new_days", "recalled_days") else 1,
                maximum=MAX_DAYS,
                default=getattr(defaults, name),
            )
            for name in _LIFECYCLE
        }
        try:
            return LifecycleSettings(**numbers)
        except ModelError as exc:
            raise self.error(parts, detail=str(exc)) from None

    def segments(self, value: Any, known: _KnownNames) -> dict[str, SegmentConfig]:
        table = self.table(value, ("segments",))
        found: dict[str, SegmentConfig] = {}
        for name, entry in table.items():
            parts: _KeyPath = ("segments", name)
            if not _NAME.fullmatch(name):
                raise self.error(
                    parts,
                    expected=f"a segment name ({_SEGMENT_NAME_RULE})",
                    found=_quote(name),
                    detail=f"a segment name is {_SEGMENT_NAME_RULE}",
                )
            if name in ("and", "or", "not"):
                raise self.error(
                    parts, detail=f"{name!r} is a word of segment expressions; choose another name"
                )
            entry = self.table(entry, parts)
            where = self.string(entry, parts, "where", default=None, non_empty=True)
            kind = self.string(entry, parts, "type", default=None, non_empty=True)
            if (where is None) == (kind is None):
                raise self.error(
                    parts,
                    detail='set either where = "<expression>" or type = "<segment type>"',
                )
            if name in BUILTIN_SEGMENTS and not (name == "contributors" and kind == name):
                raise self.error(
                    parts,
                    detail=f"{name!r} is a built-in segment; choose another name"
                    + (
                        ' (or set type = "contributors" to change its settings)'
                        if name == "contributors"
                        else ""
                    ),
                )
            settings: dict[str, Any] = {}
            if where is not None:
                self.check_keys(entry, parts, ("where",))
                self.expression(where, (*parts, "where"))
            else:
                settings = {k: _freeze(v, False) for k, v in entry.items() if k != "type"}
                builtin = BUILTIN_TYPES.get(str(kind))
                if builtin is not None:
                    try:
                        builtin(settings)
                    except SegmentError as exc:
                        raise self.error(parts, detail=str(exc)) from None
            found[name] = SegmentConfig(
                name=name, where=where, type=kind, settings=settings, key=_render_key(parts)
            )
        names = known.with_segments(found)
        for name, segment in found.items():
            if segment.where is not None:
                self.check_names(
                    parse_expression(segment.where), names, ("segments", name, "where")
                )
        self.check_cycles(found)
        return found

    def expression(self, text: str, parts: _KeyPath) -> Expr:
        try:
            return parse_expression(text)
        except SegmentError as exc:
            raise self.error(parts, detail=str(exc)) from None

    def check_names(self, expr: Expr, known: _KnownNames, parts: _KeyPath) -> None:
        for name in sorted(expr.names()):
            problem = known.problem(name)
            if problem is not None:
                raise self.error(parts, found=_quote(name), detail=problem)

    def check_cycles(self, found: Mapping[str, SegmentConfig]) -> None:
        refs = {
            name: sorted(parse_expression(seg.where).names() & found.keys())
            for name, seg in found.items()
            if seg.where is not None
        }
        done: set[str] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in path:
                loop = " -> ".join([*path[path.index(name) :], name])
                raise self.error(
                    ("segments", path[0], "where"),
                    detail=f"segments refer to each other in a loop: {loop}",
                )
            if name in done:
                return
            if len(path) >= MAX_SEGMENT_DEPTH:
                raise self.error(
                    ("segments", path[0], "where"),
                    detail=f"segments refer to segments more than {MAX_SEGMENT_DEPTH} deep "
                    f"(from {path[0]!r} to {name!r})",
                )
            for ref in refs.get(name, ()):
                visit(ref, [*path, name])
            done.add(name)

        for name in refs:
            visit(name, [])

    def campaign_segments(self, campaigns: Sequence[PluginConfig], known: _KnownNames) -> None:
        """A campaign's ``segment`` setting, a segment name or expression, names
        segments that exist."""
        for index, campaign in enumerate(campaigns):
            text = campaign.settings.get("segment")
            if not isinstance(text, str) or not text.strip():
                continue  # the campaign type says what it expects
            parts: _KeyPath = ("campaigns", index, "segment")
            self.check_names(self.expression(text, parts), known, parts)

    def campaign_tiers(self, campaigns: Sequence[PluginConfig], tiers: list[str]) -> None:
        """A campaign's ``tier_reached`` table (a template per tier) names tiers of
        the ladder: a misspelt tier would never be reached."""
        for index, campaign in enumerate(campaigns):
            table = campaign.settings.get("tier_reached")
            if not isinstance(table, Mapping):
                continue  # the campaign type says what it expects
            for name in table:
                if name in tiers:
                    continue
                close = difflib.get_close_matches(name, tiers, n=1)
                hint = (
                    f'did you mean "{close[0]}"?'
                    if close
                    else "the tiers are " + ", ".join(_quote(t) for t in tiers)
                )
                raise self.error(
                    ("campaigns", index, "tier_reached", name),
                    expected="the name of a tier of [tiers]",
                    found=_quote(name),
                    detail=f"unknown tier {_quote(name)}; {hint}",
                )

    def auto_tags(self, value: Any, known: _KnownNames) -> tuple[AutoTagConfig, ...]:
        found: list[AutoTagConfig] = []
        for index, table in enumerate(self.array_of_tables(value, ("auto_tags",))):
            parts: _KeyPath = ("auto_tags", index)
            self.check_keys(table, parts, _AUTO_TAG)
            tag = self.string(table, parts, "tag", non_empty=True)
            segment = self.string(table, parts, "segment", default=None, non_empty=True)
            where = self.string(table, parts, "where", default=None, non_empty=True)
            if (segment is None) == (where is None):
                raise self.error(
                    parts, detail='set either segment = "<name>" or where = "<expression>"'
                )
            if segment is not None:
                problem = known.problem(segment)
                if problem is not None:
                    raise self.error((*parts, "segment"), found=_quote(segment), detail=problem)
            else:
                expr = self.expression(where, (*parts, "where"))
                self.check_names(expr, known, (*parts, "where"))
            found.append(
                AutoTagConfig(
                    tag=tag,
                    segment=segment,
                    where=where,
                    remove=self.boolean(table, parts, "remove", False),
                    key=_render_key(parts),
                )
            )
        return tuple(found)


@attrs.frozen(kw_only=True)
class _KnownNames:
    """What segment names a file may use: built-ins, its tiers, groups and segments."""

    tiers: frozenset[str]
    groups: frozenset[str]
    segments: frozenset[str] = frozenset()

    def with_segments(self, segments: Mapping[str, SegmentConfig]) -> _KnownNames:
        return attrs.evolve(self, segments=frozenset(segments))

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not a segment this file can use, or ``None``."""
        if name in self.segments:
            return None
        kind, _, value = name.partition(":")
        if builtin_segment(name) is not None:
            if kind == "tier" and value not in self.tiers:
                return (
                    f"unknown tier {value!r} in {name!r} (tiers: {', '.join(sorted(self.tiers))})"
                )
            if kind == "group" and value not in self.groups:
                shown = ", ".join(sorted(self.groups)) or "none configured"
                return f"unknown group {value!r} in {name!r} (groups: {shown})"
            return None
        choices = [*BUILTIN_SEGMENTS, *self.segments]
        close = difflib.get_close_matches(name, choices, n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else "use a built-in segment, tier:<name>, tag:<tag>, group:<key>, "
            "platform:<name> or a [segments.<name>] table"
        )
        return f"unknown segment {name!r}; {hint}"
