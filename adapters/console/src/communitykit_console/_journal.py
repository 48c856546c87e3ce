"""The journal: what the console platform performed, for exactly-once delivery.

A JSONL file, one line per performed action::

    {"action_id": "a-1f…", "type": "send_message", "at": "2026-03-29T01:30:00+08:00",
     "receipt": {"action_id": "a-1f…", "platform_message_id": "17", "detail": ""}}

Each line is flushed and fsync'ed before the perform returns. An action whose id
the journal holds is not performed again: its stored receipt is returned, as a
platform honouring an idempotency key would. Every read and write holds an
exclusive lock on the file (on POSIX systems), so several processes sharing one
journal never perform the same action twice either.

A last line cut short (a crash in the middle of writing it) is dropped: the
action it described had not been confirmed. Any other damaged line is an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from communitykit import Action, CommunityKitError, Receipt

if sys.platform != "win32":
    import fcntl

__all__ = ["Journal", "JournalError"]


class JournalError(CommunityKitError):
    """The journal file is damaged somewhere other than its last line."""


class Journal:
    """The journal at ``path`` (created, with its folder, when missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        #: how many bytes of a cut-short last line were dropped when reading
        self.repaired = 0
        self._receipts: dict[str, Receipt] = {}
        self._offset = 0
        self._lines = 0
        self._handle: IO[bytes] | None = None

    def __len__(self) -> int:
        return len(self._receipts)

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._receipts

    def receipt_for(self, action_id: str) -> Receipt | None:
        """The receipt of the action ``action_id`` if it was performed (as last read)."""
        return self._receipts.get(action_id)

    def load(self) -> None:
        """Read what was appended since the last read (all of it, the first time)."""
        with self.locked():
            pass

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the journal's lock, having read it up to date; :meth:`append` inside."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            if sys.platform != "win32":
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                self._handle = handle
                self._read(handle)
                yield
            finally:
                self._handle = None
                if sys.platform != "win32":
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def append(self, action: Action, receipt: Receipt, *, at: datetime) -> None:
        """Write the line for ``action``, flushed and fsync'ed. Only inside :meth:`locked`."""
        handle = self._handle
        if handle is None:
            raise RuntimeError("Journal.append() must be called inside Journal.locked()")
        record = {
            "action_id": action.action_id,
            "type": action.TYPE,
            "at": at.isoformat(),
            "receipt": {
                "action_id": receipt.action_id,
                "platform_message_id": receipt.platform_message_id,
                "detail": receipt.detail,
            },
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        handle.write(line.encode())
        handle.flush()
        os.fsync(handle.fileno())
        self._offset = handle.tell()
        self._lines += 1
        self._receipts[action.action_id] = receipt

    # ------------------------------------------------------------------ reading

    def _read(self, handle: IO[bytes]) -> None:
        handle.seek(self._offset)
        data = handle.read()
        if not data:
            return
        *complete, tail = data.split(b"\n")
        position = self._offset
        for raw in complete:
            self._lines += 1
            receipt = self._parse(raw)
            if receipt is None and raw.strip():
                raise JournalError(
                    f"the journal {self.path} is damaged at line {self._lines}: "
                    f"{raw[:80]!r} is not a journal record; move the file away to start afresh"
                )
            if receipt is not None:
                self._receipts[receipt.action_id] = receipt
            position += len(raw) + 1
        if tail:
            receipt = self._parse(tail)
            if receipt is None:
                # a crash cut the last line short: the action was never confirmed
                handle.truncate(position)
                self.repaired += len(tail)
            else:
                # only the newline was lost: keep the record, end its line
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
                handle.flush()
                os.fsync(handle.fileno())
                self._lines += 1
                self._receipts[receipt.action_id] = receipt
                position += len(tail) + 1
        self._offset = position

    @staticmethod
    def _parse(raw: bytes) -> Receipt | None:
        try:
            record: Any = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        action_id = record.get("action_id")
        stored = record.get("receipt")
        if not isinstance(action_id, str) or not isinstance(stored, dict):
            return None
        message_id = stored.get("platform_message_id")
        detail = stored.get("detail", "")
        if not (message_id is None or isinstance(message_id, str)) or not isinstance(detail, str):
            return None
        return Receipt(action_id=action_id, platform_message_id=message_id, detail=detail)
