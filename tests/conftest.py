"""Shared test settings.

Hypothesis runs without per-example deadlines: the suite runs on shared,
noisy machines, and speed is measured in ``benchmarks/``, never in tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog for its process; give every test the defaults back."""
    yield
    structlog.reset_defaults()
