"""Keeping tokens out of log lines, exception messages and reprs.

Every :class:`HttpClient` registers a :class:`Redactor` holding its secrets.
:func:`redact_text` applies every registered redactor, then patterns that catch
token-shaped text even when nobody registered it (a Telegram token, an
``access_token=`` or ``key=`` query parameter, an ``Authorization`` value).
A :class:`logging.Filter` applies it to the records of httpx, httpcore and hpack
(whose debug logs may show URLs), and :func:`redact_processor` is the same for
structlog.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import quote, quote_plus

from communitykit._secret import Secret

__all__ = [
    "REDACTED",
    "Redactor",
    "install_log_filter",
    "redact_processor",
    "redact_text",
]

REDACTED = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a Telegram bot token: "<bot id>:<35 characters>"
    (re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}"), REDACTED),
    # secrets in query strings (WeCom's access_token= and key=, and the usual names)
    (
        re.compile(
            r"(?i)\b((?:access_token|key|token|secret|signature|sig|password)=)[^&\s#'\"<>]+"
        ),
        rf"\1{REDACTED}",
    ),
    # Authorization header values
    (re.compile(r"(?i)\b((?:Bot|Bearer|Basic) )[A-Za-z0-9._~+/=-]{16,}"), rf"\1{REDACTED}"),
)

#: the loggers of the HTTP stack that may print a URL
HTTP_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "hpack",
    "hpack.hpack",
    "hpack.table",
)

_lock = threading.Lock()
_active: weakref.WeakSet[Redactor] = weakref.WeakSet()


class Redactor:
    """Replaces known secrets (and their URL-encoded forms) with ``***``."""

    __slots__ = ("__weakref__", "_forms", "_secrets")

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        self._secrets: list[Secret] = []
        self._forms: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: Secret) -> None:
        """Also redact ``secret`` from now on."""
        if not isinstance(secret, Secret):
            raise TypeError("pass tokens as communitykit.Secret")
        if not secret or any(secret == known for known in self._secrets):
            return
        self._secrets.append(secret)
        forms = {form for known in self._secrets for form in _forms(known.reveal())}
        # longest first, so a secret containing another is replaced whole
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def register(self) -> None:
        """Apply this redactor in :func:`redact_text` (and so to every log line)."""
        with _lock:
            _active.add(self)

    def unregister(self) -> None:
        with _lock:
            _active.discard(self)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


def _forms(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote(value), quote_plus(value)}


def redact_text(text: str) -> str:
    """``text`` without any registered secret or token-shaped value."""
    with _lock:
        redactors = tuple(_active)
    for redactor in redactors:
        text = redactor.redact(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(item) for item in value)
    if isinstance(value, BaseException):
        return redact_text(repr(value))
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: put it first in ``structlog.configure(processors=[...])``."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback text) without secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the handler's problem, not ours
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_filter(names: Iterable[str] = HTTP_LOGGERS) -> None:
    """Add the redacting filter to the named stdlib loggers (idempotent).

    A logger's filters see only the records logged through that very logger, so
    each logger of the HTTP stack gets its own. :class:`HttpClient` calls this.
    """
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
            logger.addFilter(_FILTER)
