"""Fixtures: the Telegram double (``tests/doubles``), adapters against it, an event recorder.

The double lives in the repository's ``tests`` package; the repository root is
put on ``sys.path`` so this folder also runs on its own
(``pytest adapters/telegram``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from communitykit_telegram import TelegramAdapter  # noqa: E402
from telegram_helpers import FAST, MakeAdapter, Recorder  # noqa: E402
from tests.doubles.fixtures import (  # noqa: E402
    TEST_TOKEN,
    manual_clock,
    telegram_double,
    telegram_double_factory,
)
from tests.doubles.telegram import RateLimits, TelegramDouble  # noqa: E402

__all__ = ["manual_clock", "telegram_double", "telegram_double_factory"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def double(telegram_double_factory: Callable[..., TelegramDouble]) -> TelegramDouble:
    """A double with no limits a test could reach (for tests not about limits)."""
    return telegram_double_factory(limits=RateLimits.unlimited())


@pytest.fixture
async def make_adapter() -> AsyncIterator[MakeAdapter]:
    """``make_adapter(double, **kwargs)``: an adapter on ``double``, closed after the test.

    Defaults fit tests: fast limits (``FAST``), short polls, quick backoffs.
    """
    made: list[TelegramAdapter] = []

    def make(double: TelegramDouble, **kwargs: Any) -> TelegramAdapter:
        kwargs.setdefault("token", TEST_TOKEN)
        kwargs.setdefault("api_base", double.base_url)
        kwargs.setdefault("limits", FAST)
        kwargs.setdefault("poll_timeout", 2)
        kwargs.setdefault("poll_backoff", 0.01)
        kwargs.setdefault("max_poll_backoff", 0.05)
        kwargs.setdefault("backoff", 0.01)
        adapter = TelegramAdapter(**kwargs)
        made.append(adapter)
        return adapter

    yield make
    for adapter in reversed(made):
        await adapter.close()


@pytest.fixture
async def adapter(double: TelegramDouble, make_adapter: MakeAdapter) -> TelegramAdapter:
    return make_adapter(double)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
