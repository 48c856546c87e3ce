"""Local doubles of the platforms' HTTP APIs, for tests and benchmarks.

- :mod:`tests.doubles.telegram`: a fake Telegram Bot API server on 127.0.0.1.
- :mod:`tests.doubles.fixtures`: its pytest fixtures (see that module for how to load them).
"""
