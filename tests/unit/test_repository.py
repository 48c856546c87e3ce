"""The promises the repository itself makes: README commands, CI, packaging, API."""

from __future__ import annotations

import re
from pathlib import Path

import communitykit

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_opens_with_the_demo_and_the_test_command() -> None:
    demo, tests = _readme_commands()[:2]
    assert "communitykit demo" in demo
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    tests = _readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci


def test_package_is_typed() -> None:
    assert (Path(communitykit.__file__).parent / "py.typed").is_file()


def test_public_api_is_exported_and_exists() -> None:
    assert len(set(communitykit.__all__)) == len(communitykit.__all__)
    for name in communitykit.__all__:
        assert hasattr(communitykit, name), name


def test_every_error_derives_from_the_root_error() -> None:
    errors = [
        getattr(communitykit, name)
        for name in communitykit.__all__
        if isinstance(getattr(communitykit, name), type)
        and issubclass(getattr(communitykit, name), Exception)
    ]
    assert len(errors) >= 5
    assert all(issubclass(e, communitykit.CommunityKitError) for e in errors)
