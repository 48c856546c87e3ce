"""The Telegram double's fixtures, for the tests of the double itself."""

from tests.doubles.fixtures import manual_clock, telegram_double, telegram_double_factory

__all__ = ["manual_clock", "telegram_double", "telegram_double_factory"]
