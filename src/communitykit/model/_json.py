"""The JSON form shared by events and actions (see ``EVENTS.md``).

An event or an action is a frozen attrs class whose fields *are* its JSON
schema: the annotation of each field picks a codec (``str``, ``int``,
``datetime``, ``date``, ``Decimal``, a ``StrEnum``, ``tuple[str, ...]``,
``Mapping[str, str]``, each possibly ``| None``), and a field with a default is
optional in JSON and left out of the output while it holds that default.
Unknown JSON fields land in ``extra`` and are written back after the known ones,
so a record read and written again keeps them.

Reading is strict: a JSON string is never taken for a number or the other way
round, ``true`` is not an integer, a timestamp must carry a UTC offset. Every bad
input raises :class:`~communitykit._errors.FormatError` naming the field, saying
what was expected and what was found; nothing else escapes.

Nothing here reads the clock or does I/O.
"""

from __future__ import annotations

import enum
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Protocol, TypeVar

import attrs

from communitykit._errors import FormatError
from communitykit.model._time import iso_text

__all__ = [
    "Codec",
    "FieldSpec",
    "JSONRecord",
    "check_aware",
    "check_extra_keys",
    "describe",
    "extra_field",
    "field_specs",
    "freeze_extra",
    "freeze_str_map",
    "non_negative_int",
    "optional_aware",
    "record_from_dict",
    "record_from_json",
    "required_aware",
    "str_tuple",
]

OFFSET_EXAMPLE = "2026-03-29T01:30:00+08:00"
_EXTRA = "extra"
_TYPE = "type"
_DECIMAL_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")

R = TypeVar("R", bound="JSONRecord")


# --------------------------------------------------------------------------- describing values


def describe(value: object) -> str:
    """Name a found value for an error message: its JSON kind and a short excerpt."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int):
        try:
            text = str(value)
        except ValueError:  # more digits than int->str conversion allows
            return "an integer (too large to show)"
        return f"an integer ({_shorten(text)})"
    if isinstance(value, float):
        return f"a number ({_shorten(repr(value))})"
    if isinstance(value, str):
        return f"a string ({_shorten(repr(value))})"
    if isinstance(value, list | tuple):
        return "an empty list" if not value else "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a Python {type(value).__name__}"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mismatch(field: str, expected: str, value: object) -> FormatError:
    return FormatError(f"expected {expected}, found {describe(value)}", field=field)


# --------------------------------------------------------------------------- domain checks


def check_aware(field: str, value: datetime) -> None:
    """Raise :class:`FormatError` when ``value`` has no UTC offset."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise FormatError(
            f"must include a UTC offset, e.g. {OFFSET_EXAMPLE}, found {value.isoformat()!r}",
            field=field,
        )


def required_aware(_instance: object, attribute: attrs.Attribute[Any], value: datetime) -> None:
    """attrs validator: a datetime carrying a UTC offset."""
    if not isinstance(value, datetime):
        raise _mismatch(attribute.name, "a timezone-aware datetime", value)
    check_aware(attribute.name, value)


def optional_aware(
    instance: object, attribute: attrs.Attribute[Any], value: datetime | None
) -> None:
    """attrs validator: ``None`` or a datetime carrying a UTC offset."""
    if value is not None:
        required_aware(instance, attribute, value)


def non_negative_int(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    """attrs validator: an ``int`` (not a ``bool``) that is at least 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _mismatch(attribute.name, "a non-negative integer", value)


# --------------------------------------------------------------------------- converters


def str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    """attrs converter: any iterable of strings becomes a tuple."""
    return tuple(values)


def freeze_str_map(values: Mapping[str, str]) -> Mapping[str, str]:
    """attrs converter: a read-only copy of a ``str -> str`` mapping."""
    return types.MappingProxyType(dict(values))


def freeze_extra(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """attrs converter: a deep, read-only copy of unknown JSON fields.

    Objects become read-only mappings and lists become tuples, so a record holding
    extras stays immutable. Anything that is not a JSON value (or a float that is
    not finite) raises :class:`FormatError` naming the extra field.
    """
    if not isinstance(values, Mapping):
        raise _mismatch(_EXTRA, "an object of extra fields", values)
    try:
        return _freeze_object(values, None)
    except RecursionError:
        raise FormatError("the value is nested too deeply", field=_EXTRA) from None


def _freeze_object(values: Mapping[Any, Any], path: str | None) -> Mapping[str, Any]:
    frozen = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise FormatError(
                f"object keys must be strings, found {describe(key)}", field=path or _EXTRA
            )
        frozen[key] = _freeze(value, key if path is None else f"{path}.{key}")
    return types.MappingProxyType(frozen)


def _freeze(value: object, path: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _mismatch(path, "a finite number", value)
        return value
    if isinstance(value, list | tuple):
        return tuple(_freeze(item, f"{path}.{index}") for index, item in enumerate(value))
    if isinstance(value, Mapping):
        return _freeze_object(value, path)
    raise _mismatch(path, "a JSON value", value)


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    return value


# --------------------------------------------------------------------------- codecs


class Codec(Protocol):
    """How one field travels between Python and JSON."""

    @property
    def expected(self) -> str:
        """What the JSON value must be, as a message fragment (``"a string"``)."""
        ...

    def decode(self, value: object, field: str) -> Any:
        """Turn a JSON value into the Python value, or raise :class:`FormatError`."""
        ...

    def encode(self, value: Any) -> Any:
        """Turn the Python value into a JSON-ready value."""
        ...


@attrs.frozen
class _Str:
    expected: str = "a string"

    def decode(self, value: object, field: str) -> str:
        if not isinstance(value, str):
            raise _mismatch(field, self.expected, value)
        return value

    def encode(self, value: str) -> str:
        return value


@attrs.frozen
class _Int:
    expected: str = "an integer"

    def decode(self, value: object, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _mismatch(field, self.expected, value)
        return value

    def encode(self, value: int) -> int:
        return value


@attrs.frozen
class _DateTime:
    expected: str = f"an ISO 8601 timestamp with a UTC offset, e.g. {OFFSET_EXAMPLE}"

    def decode(self, value: object, field: str) -> datetime:
        if not isinstance(value, str):
            raise _mismatch(field, self.expected, value)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _mismatch(field, self.expected, value) from None
        check_aware(field, parsed)
        return parsed

    def encode(self, value: datetime) -> str:
        return value.isoformat()


@attrs.frozen
class _Date:
    expected: str = "an ISO 8601 date, e.g. 2026-03-29"

    def decode(self, value: object, field: str) -> date:
        if not isinstance(value, str):
            raise _mismatch(field, self.expected, value)
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise _mismatch(field, self.expected, value) from None

    def encode(self, value: date) -> str:
        return value.isoformat()


@attrs.frozen
class _Decimal:
    expected: str = 'a non-negative decimal string such as "99.00"'

    def decode(self, value: object, field: str) -> Decimal:
        if not isinstance(value, str) or _DECIMAL_TEXT.fullmatch(value) is None:
            raise _mismatch(field, self.expected, value)
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid text
            raise _mismatch(field, self.expected, value) from None

    def encode(self, value: Decimal) -> str:
        # Fixed-point notation keeps the exponent of "99.00" and never writes "1E+3".
        return format(value, "f")


@attrs.frozen
class _Enum:
    enum_type: type[enum.StrEnum]
    expected: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        allowed = ", ".join(repr(member.value) for member in self.enum_type)
        object.__setattr__(self, "expected", f"one of {allowed}")

    def decode(self, value: object, field: str) -> enum.StrEnum:
        if isinstance(value, str):
            try:
                return self.enum_type(value)
            except ValueError:
                pass
        raise _mismatch(field, self.expected, value)

    def encode(self, value: enum.StrEnum) -> str:
        return str(value)


@attrs.frozen
class _StrList:
    expected: str = "a list of strings"

    def decode(self, value: object, field: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise _mismatch(field, self.expected, value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _mismatch(f"{field}.{index}", "a string", item)
        return tuple(value)

    def encode(self, value: tuple[str, ...]) -> list[str]:
        return list(value)


@attrs.frozen
class _StrMap:
    expected: str = "an object with string values"

    def decode(self, value: object, field: str) -> Mapping[str, str]:
        if not isinstance(value, dict):
            raise _mismatch(field, self.expected, value)
        for key, item in value.items():
            if not isinstance(key, str):
                raise _mismatch(field, "string keys", key)
            if not isinstance(item, str):
                raise _mismatch(f"{field}.{key}", "a string", item)
        return types.MappingProxyType(dict(value))

    def encode(self, value: Mapping[str, str]) -> dict[str, str]:
        return dict(value)


_SIMPLE: dict[object, Codec] = {
    str: _Str(),
    int: _Int(),
    datetime: _DateTime(),
    date: _Date(),
    Decimal: _Decimal(),
    tuple[str, ...]: _StrList(),
    Mapping[str, str]: _StrMap(),
}


def _codec_for(annotation: object) -> tuple[Codec, bool]:
    """The codec of a field annotation, and whether ``None`` is allowed."""
    nullable = False
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"unsupported field type {annotation!r}")
        annotation, nullable = members[0], True
    if isinstance(annotation, type) and issubclass(annotation, enum.StrEnum):
        return _Enum(annotation), nullable
    try:
        return _SIMPLE[annotation], nullable
    except (KeyError, TypeError):
        raise TypeError(f"unsupported field type {annotation!r}") from None


# --------------------------------------------------------------------------- records


@attrs.frozen
class FieldSpec:
    """How one attrs field of a record is read from and written to JSON."""

    name: str
    codec: Codec
    nullable: bool
    default: Callable[[], object] | None  # None: the field is required

    def is_default(self, value: object) -> bool:
        """True when ``value`` is the field's default, so it is left out of the output."""
        if self.default is None:
            return False
        default = self.default()
        return value is None if default is None else bool(value == default)


def _constant(value: object) -> Callable[[], object]:
    return lambda: value


_SPECS: dict[type, tuple[FieldSpec, ...]] = {}


def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """The JSON fields of the record class ``cls``, in output order (``extra`` excluded)."""
    specs = _SPECS.get(cls)
    if specs is None:
        specs = _SPECS[cls] = _field_specs(cls)
    return specs


def _field_specs(cls: type) -> tuple[FieldSpec, ...]:
    hints = typing.get_type_hints(cls)
    specs = []
    for attribute in attrs.fields(typing.cast("type[attrs.AttrsInstance]", cls)):
        if attribute.name == _EXTRA:
            continue
        codec, nullable = _codec_for(hints[attribute.name])
        default: Callable[[], object] | None
        if attribute.default is attrs.NOTHING:
            default = None
        elif isinstance(attribute.default, attrs.Factory):  # type: ignore[arg-type]
            default = attribute.default.factory
        else:
            default = _constant(attribute.default)
        specs.append(FieldSpec(attribute.name, codec, nullable, default))
    return tuple(specs)


class JSONRecord:
    """Mixin giving an attrs record class its JSON form.

    A subclass sets ``TYPE`` (its JSON ``type``), is an attrs class, and has an
    ``extra`` field converted with :func:`freeze_extra`.
    """

    __slots__ = ()

    TYPE: ClassVar[str]
    extra: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: ``type``, the fields in declaration order, then the extras."""
        cls = type(self)
        writer = _WRITERS.get(cls)
        if writer is None:
            writer = _WRITERS[cls] = _writer(cls)
        return writer(self)

    def to_json(self) -> str:
        """The JSON object on one line, non-ASCII text kept as is."""
        cls = type(self)
        writer = _JSON_WRITERS.get(cls)
        if writer is None:
            writer = _JSON_WRITERS[cls] = _json_writer(cls)
        try:
            return writer(self)
        except (TypeError, AttributeError):  # a value not of its field's type: the encoder says
            return _ENCODE(self.to_dict())


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
# the encoder's own string writer (non-ASCII kept): the text _ENCODE writes for a str
_STRING: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.py_encode_basestring
)
_JSON_WRITERS: dict[type, Callable[[Any], str]] = {}


def _json_writer(cls: type) -> Callable[[Any], str]:
    """``to_json`` for the record class ``cls``: the text ``_ENCODE(to_dict())`` gives,
    written directly.

    Strings, integers and timestamps (most of an event) are written in place;
    every other value goes through its codec and the encoder. A run of required
    string and timestamp fields is written as one sequence of pieces, without a
    test for each: a value of another type (``None`` included) makes the string
    writer or the timestamp raise, and :meth:`JSONRecord.to_json` then writes the
    record through the encoder. The output is the same text, byte for byte (a
    property test holds it to that).
    """
    namespace: dict[str, Any] = {
        "_thaw": _thaw,
        "S": _STRING,
        "E": _ENCODE,
        "I": int.__repr__,
        "T": iso_text,
    }
    codecs = {spec.name: spec.codec for spec in field_specs(cls)}

    def value(n: int, encode: Callable[[Any], Any] | None) -> str:
        if encode is None:  # a str or an int: its own JSON
            return "(S(v) if v.__class__ is str else I(v) if v.__class__ is int else E(v))"
        if getattr(encode, "__func__", None) is _DateTime.encode:
            return "'\"' + T(v) + '\"'"
        return f"E(e{n}(v))"

    def key(name: str, then: str = "") -> str:
        return repr(", " + _ENCODE(name) + ": " + then)

    # the pieces of a run of fields written unconditionally: literal text, or code
    run: list[tuple[bool, str]] = [(True, "{" + _ENCODE(_TYPE) + ": "), (False, "S(self.TYPE)")]
    lines = ["def to_json(self):", "    out = []"]

    def literal(text: str) -> None:
        if run and run[-1][0]:
            run[-1] = (True, run[-1][1] + text)
        else:
            run.append((True, text))

    def flush() -> None:
        if run:
            pieces = ", ".join(repr(text) if is_text else text for is_text, text in run)
            lines.append(f"    out += ({pieces},)")
            run.clear()

    for n, (name, encode, has_default, default) in enumerate(_write_plan(cls)):
        namespace[f"e{n}"] = encode
        namespace[f"d{n}"] = default
        if not has_default and isinstance(codecs[name], _Str):
            literal(", " + _ENCODE(name) + ": ")
            run.append((False, f"S(self.{name})"))
            continue
        if not has_default and getattr(encode, "__func__", None) is _DateTime.encode:
            literal(", " + _ENCODE(name) + ': "')
            run.append((False, f"T(self.{name})"))
            literal('"')
            continue
        flush()
        lines += _field_code(
            n,
            name,
            value(n, encode),
            has_default=has_default,
            default=default,
            put=lambda name, text: f"out.append({key(name)} + {text})",
            null=lambda name: f"out.append({key(name, 'null')})",
        )
    flush()
    lines += [
        "    if self.extra:",
        "        for key, value in self.extra.items():",
        "            out.append(', ' + S(key) + ': ' + E(_thaw(value)))",
        "    out.append('}')",
        "    return ''.join(out)",
    ]
    exec("\n".join(lines), namespace)  # the source is built from field names only
    function: Callable[[Any], str] = namespace["to_json"]
    return function


def _field_lines(
    cls: type,
    namespace: dict[str, Any],
    value: Callable[[int, Callable[[Any], Any] | None], str],
    *,
    put: Callable[[str, str], str],
    null: Callable[[str], str],
) -> list[str]:
    """The source lines writing each field of ``cls`` as its write plan says.

    ``value(n, encode)`` is the expression for field ``n``'s value ``v``;
    ``put(name, expression)`` and ``null(name)`` the statements writing it and
    writing null. A field at its default is left out; ``None`` is written for a
    field whose default is not ``None``. The codecs and defaults go into
    ``namespace`` as ``e{n}`` and ``d{n}``.
    """
    lines = []
    for n, (name, encode, has_default, default) in enumerate(_write_plan(cls)):
        namespace[f"e{n}"] = encode
        namespace[f"d{n}"] = default
        text = value(n, encode)
        lines += _field_code(
            n, name, text, has_default=has_default, default=default, put=put, null=null
        )
    return lines


def _field_code(
    n: int,
    name: str,
    text: str,
    *,
    has_default: bool,
    default: object,
    put: Callable[[str, str], str],
    null: Callable[[str], str],
) -> list[str]:
    """The source lines writing field ``n`` (``name``), whose value ``v`` is written
    by the expression ``text``; see :func:`_field_lines`."""
    if not has_default:
        return [
            f"    v = self.{name}",
            f"    if v is None: {null(name)}",
            f"    else: {put(name, text)}",
        ]
    if default is None:
        return [f"    v = self.{name}", f"    if v is not None: {put(name, text)}"]
    return [
        f"    v = self.{name}",
        f"    if v is None: {null(name)}",
        f"    elif v != d{n}: {put(name, text)}",
    ]


# per record class: (field, encoder or None when the value is its own JSON, has a
# default, the default value); what to_dict runs through
_Plan = tuple[tuple[str, Callable[[Any], Any] | None, bool, object], ...]
_PLANS: dict[type, _Plan] = {}


_WRITERS: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _writer(cls: type) -> Callable[[Any], dict[str, Any]]:
    """``to_dict`` for the record class ``cls``, its write plan unrolled into one function.

    A field whose value is its default is left out; ``None`` is written for a field
    whose default is not ``None``; each value goes through its codec's encoder.
    """
    namespace: dict[str, Any] = {"_thaw": _thaw}

    def value(n: int, encode: Callable[[Any], Any] | None) -> str:
        if getattr(encode, "__func__", None) is _DateTime.encode:
            return "v.isoformat()"  # the codec's encode, without the call
        return "v" if encode is None else f"e{n}(v)"

    lines = [
        "def to_dict(self):",
        f"    out = {{{_TYPE!r}: self.TYPE}}",
        *_field_lines(
            cls,
            namespace,
            value,
            put=lambda name, text: f"out[{name!r}] = {text}",
            null=lambda name: f"out[{name!r}] = None",
        ),
        "    if self.extra:",
        "        out.update((key, _thaw(value)) for key, value in self.extra.items())",
        "    return out",
    ]
    exec("\n".join(lines), namespace)  # the source is built from field names only
    function: Callable[[Any], dict[str, Any]] = namespace["to_dict"]
    return function


def _write_plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple(
            (
                spec.name,
                None if isinstance(spec.codec, _Str | _Int) else spec.codec.encode,
                spec.default is not None,
                None if spec.default is None else spec.default(),
            )
            for spec in field_specs(cls)
        )
    return plan


def check_extra_keys(instance: JSONRecord, attribute: attrs.Attribute[Any], value: Any) -> None:
    """attrs validator: an extra field must not shadow ``type`` or a declared field."""
    if not value:
        return
    taken = {_TYPE} | {spec.name for spec in field_specs(type(instance))}
    for key in value:
        if key in taken:
            raise FormatError(
                f"extra field {key!r} clashes with a declared field of {instance.TYPE}; "
                "set the field itself instead",
                field=f"{attribute.name}.{key}",
            )


def extra_field() -> Any:
    """The ``extra`` attrs field of a record: unknown JSON fields, read-only, never hashed."""
    return attrs.field(factory=dict, converter=freeze_extra, validator=check_extra_keys, hash=False)


def record_from_dict(
    data: object, registry: Mapping[str, type[R]], *, kind: str, line: int | None
) -> R:
    """Build the record of ``registry[data["type"]]`` from a decoded JSON object.

    ``kind`` ("event", "action") is used in messages; ``line`` is carried into the
    :class:`FormatError` raised for any bad input.
    """
    try:
        return _build(data, registry, kind)
    except FormatError as exc:
        if exc.line is not None or line is None:
            raise
        raise FormatError(exc.detail, field=exc.field, line=line) from exc
    except RecursionError:
        raise FormatError(f"the {kind} is nested too deeply", line=line) from None


def _build(data: object, registry: Mapping[str, type[R]], kind: str) -> R:
    if not isinstance(data, dict):
        raise FormatError(f"expected a JSON object for an {kind}, found {describe(data)}")
    known = ", ".join(sorted(registry))
    if _TYPE not in data:
        raise FormatError(f"expected the {kind} type, one of {known}, found nothing", field=_TYPE)
    type_name = data[_TYPE]
    if not isinstance(type_name, str):
        raise _mismatch(_TYPE, f"the {kind} type, one of {known}", type_name)
    cls = registry.get(type_name)
    if cls is None:
        raise FormatError(
            f"unknown {kind} type {type_name!r}; expected one of {known}", field=_TYPE
        )

    specs = field_specs(cls)
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name not in data:
            if spec.default is None:
                raise FormatError(
                    f"expected {spec.codec.expected}, found nothing "
                    f"(every {type_name} {kind} needs this field)",
                    field=spec.name,
                )
            continue
        raw = data[spec.name]
        if raw is None and (spec.nullable or spec.default is not None):
            # null in an optional field means the same as leaving it out
            if spec.default is None:
                values[spec.name] = None
            continue
        values[spec.name] = spec.codec.decode(raw, spec.name)
    names = {spec.name for spec in specs}
    extra = {key: value for key, value in data.items() if key != _TYPE and key not in names}
    build: Callable[..., R] = cls
    return build(**values, extra=extra)


def record_from_json(
    text: str, registry: Mapping[str, type[R]], *, kind: str, line: int | None
) -> R:
    """Parse one line of JSON and build the record, see :func:`record_from_dict`."""
    if not isinstance(text, str):
        raise FormatError(f"expected JSON text, found {describe(text)}", line=line)
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except FormatError as exc:
        raise FormatError(exc.detail, field=exc.field, line=line) from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise FormatError(f"not valid JSON: {exc}", line=line) from None
    except RecursionError:
        raise FormatError("not valid JSON: nested too deeply", line=line) from None
    return record_from_dict(data, registry, kind=kind, line=line)


def _reject_constant(name: str) -> object:
    raise FormatError(f"not valid JSON: {name} is not a JSON number")
