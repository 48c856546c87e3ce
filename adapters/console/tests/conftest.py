"""Fixtures: a platform on a manual clock with one group, its adapter, an event recorder."""

from __future__ import annotations

import pytest
from communitykit_console import ConsoleAdapter, ConsolePlatform, ManualClock
from console_helpers import T0, Recorder


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def platform(clock: ManualClock) -> ConsolePlatform:
    return ConsolePlatform(clock=clock, groups=["main"])


@pytest.fixture
def adapter(platform: ConsolePlatform) -> ConsoleAdapter:
    return ConsoleAdapter(platform)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
