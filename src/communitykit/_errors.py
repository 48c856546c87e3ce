"""The one error hierarchy of communitykit.

Every error communitykit raises on purpose derives from :class:`CommunityKitError`.
Messages say what failed and, where it helps, how to fix it. No message ever
contains a secret.
"""

from __future__ import annotations

__all__ = [
    "CommunityKitError",
    "DuplicateEntry",
    "FormatError",
    "InsufficientPoints",
    "InvalidOperation",
    "ModelError",
    "UnknownEntry",
    "UnknownMember",
]


class CommunityKitError(Exception):
    """Root of every error communitykit raises on purpose."""


class ModelError(CommunityKitError, ValueError):
    """A value or an operation breaks a rule of the domain model."""


class InvalidOperation(ModelError):
    """An operation is not allowed in the current state (e.g. unmerging a member never merged)."""


class UnknownMember(ModelError, LookupError):
    """No member has the given id or identity."""


class UnknownEntry(ModelError, LookupError):
    """No ledger entry has the given id."""


class DuplicateEntry(ModelError):
    """An idempotency key was reused for a different operation."""


class InsufficientPoints(ModelError):
    """A debit asked for more points than the member has."""

    def __init__(self, member: str, requested: int, balance: int) -> None:
        self.member = member
        self.requested = requested
        self.balance = balance
        super().__init__(
            f"member {member!r} cannot spend {requested} points: the balance is {balance} "
            f"({requested - balance} short)"
        )


class FormatError(CommunityKitError, ValueError):
    """Foreign data (JSON, a config file, a platform update) does not have the expected shape.

    ``field`` names the offending field (dotted for nested ones), ``line`` the line
    number in a JSONL file when known.
    """

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        self.field = field
        self.line = line
        self.detail = message
        parts = []
        if line is not None:
            parts.append(f"line {line}")
        if field is not None:
            parts.append(f"field {field!r}")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
