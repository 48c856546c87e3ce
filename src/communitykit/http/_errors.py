"""The errors of :mod:`communitykit.http`: what failed, why, and never a token."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypedDict, Unpack

from communitykit._errors import CommunityKitError
from communitykit._plugin_types import DeliveryFailed, PermanentFailure, TransientFailure
from communitykit.http._redact import redact_text

__all__ = [
    "AuthFailed",
    "ChatMigrated",
    "CircuitOpen",
    "HttpError",
    "RequestFailed",
    "TargetUnreachable",
    "UnknownScope",
]


class ErrorFields(TypedDict, total=False):
    """The keyword fields every :class:`HttpError` takes."""

    method: str | None
    url: str | None
    status: int | None
    code: int | str | None
    description: str
    retry_after: float | None


class HttpError(CommunityKitError):
    """Root of the errors of :mod:`communitykit.http`.

    ``method`` and ``url`` (redacted) say which request failed, ``status`` the
    HTTP status when there was a response, ``code`` and ``description`` what
    the platform said (Telegram's ``error_code``/``description``, Discord's
    ``code``/``message``, WeCom's ``errcode``/``errmsg``), ``retry_after`` when
    trying again makes sense (seconds). The message and every field are
    redacted: they can be logged as they are.
    """

    #: whether retrying later may succeed (see :meth:`delivery_failure`)
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        code: int | str | None = None,
        description: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.url = redact_text(url) if url is not None else None
        self.status = status
        self.code = code
        self.description = redact_text(description)
        self.retry_after = retry_after
        super().__init__(redact_text(message))

    @property
    def reason(self) -> str:
        return str(self)

    def delivery_failure(self) -> DeliveryFailed:
        """The outbox's view of this error: transient (retry later) or permanent."""
        if self.transient:
            return TransientFailure(self.reason, self.retry_after)
        return PermanentFailure(self.reason)


class UnknownScope(HttpError, ValueError):
    """A request named a scope kind its limits profile lacks: a bug, not a platform error."""


class AuthFailed(HttpError):
    """The platform refused the credentials (HTTP 401, WeCom's invalid token).

    The client stops: this and every later request raise it without a network
    call until :meth:`HttpClient.reset` (after the token was fixed or refreshed).
    """

    transient = True


class TargetUnreachable(HttpError):
    """One target cannot be reached (the user blocked the bot, the chat is gone).

    ``targets`` are the keys now marked unreachable; later requests to them fail
    fast with this error until :meth:`HttpClient.mark_reachable`. Others go on.
    """

    def __init__(
        self,
        message: str,
        *,
        targets: Sequence[tuple[str, Hashable]] = (),
        **fields: Unpack[ErrorFields],
    ) -> None:
        self.targets = tuple(targets)
        super().__init__(message, **fields)

    def delivery_failure(self) -> DeliveryFailed:
        """A :class:`PermanentFailure` marked ``unreachable``: a broadcast counts it apart."""
        return PermanentFailure(self.reason, unreachable=True)


class ChatMigrated(HttpError):
    """A Telegram group became a supergroup: resend to ``new_chat_id``.

    ``target`` is the old chat's key; requests to it now fail fast with this
    error, so the adapter can move the group (an event like any other) and resend.
    """

    def __init__(
        self,
        message: str,
        *,
        new_chat_id: int,
        target: tuple[str, Hashable] | None = None,
        **fields: Unpack[ErrorFields],
    ) -> None:
        self.new_chat_id = new_chat_id
        self.target = target
        super().__init__(message, **fields)


class CircuitOpen(HttpError):
    """Too many invalid requests (401/403/429) in the platform's window: sending stopped.

    Discord bans an IP for a while after 10,000 invalid requests in 10 minutes;
    the breaker opens long before. ``retry_after`` says when it closes again.
    """

    transient = True


class RequestFailed(HttpError):
    """The request failed: retries exhausted (``transient``), or a 4xx the platform explained."""

    def __init__(
        self, message: str, *, transient: bool = False, **fields: Unpack[ErrorFields]
    ) -> None:
        self.transient = transient
        super().__init__(message, **fields)
