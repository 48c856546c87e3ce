"""pytest fixtures for the Telegram double (:mod:`tests.doubles.telegram`).

``tests/conftest.py`` does not load them; a folder that wants them imports them
in its own ``conftest.py`` (pytest finds fixtures by name in a conftest)::

    # tests/<your folder>/conftest.py
    from tests.doubles.fixtures import manual_clock, telegram_double, telegram_double_factory

    __all__ = ["manual_clock", "telegram_double", "telegram_double_factory"]

and a test then asks for them by name::

    from tests.doubles.telegram import TelegramDouble

    def test_welcome(telegram_double: TelegramDouble) -> None:
        adapter = TelegramAdapter(token=telegram_double.token, base_url=telegram_double.base_url)
        ...
        assert [d.text for d in telegram_double.delivered(-1001)] == ["Welcome!"]

(Importing a fixture straight into a test module works too, but ruff then
reports each test argument of that name as F811.)

- ``telegram_double``: a started double with one token (``TEST_TOKEN``),
  Telegram's real limits and the real monotonic clock; stopped after the test.
- ``telegram_double_factory``: ``factory(**kwargs)`` starts a double with any
  :class:`~tests.doubles.telegram.TelegramDouble` arguments (several tokens, a
  ``time_scale``, a ``ManualClock``, ...); all are stopped after the test.
- ``manual_clock``: a :class:`~tests.doubles.telegram.ManualClock` at 1000.0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.doubles.telegram import ManualClock, TelegramDouble

__all__ = ["TEST_TOKEN", "manual_clock", "telegram_double", "telegram_double_factory"]

#: The token ``telegram_double`` accepts (a made-up one: the double never goes online).
TEST_TOKEN = "123456:TEST-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that moves only with ``advance()``; pass it as ``clock=`` to a double."""
    return ManualClock(1000.0)


@pytest.fixture
def telegram_double() -> Iterator[TelegramDouble]:
    """A running Telegram double on 127.0.0.1 that accepts ``TEST_TOKEN``."""
    with TelegramDouble(tokens=[TEST_TOKEN]) as double:
        yield double


@pytest.fixture
def telegram_double_factory() -> Iterator[Callable[..., TelegramDouble]]:
    """Start doubles with custom arguments; every one is stopped after the test."""
    started: list[TelegramDouble] = []

    def factory(**kwargs: Any) -> TelegramDouble:
        kwargs.setdefault("tokens", [TEST_TOKEN])
        double = TelegramDouble(**kwargs).start()
        started.append(double)
        return double

    yield factory
    for double in reversed(started):
        double.stop()
