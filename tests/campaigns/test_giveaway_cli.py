"""``communitykit giveaway verify`` recomputes a draw from its published seed,
and a giveaway's seed is a secret in the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from communitykit import Secret, parse_config
from communitykit.builtins.campaigns.giveaway import commitment, draw
from communitykit.cli import main

SEED = "a seed long enough to be a secret"


def test_the_published_draw_verifies_and_a_forged_one_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eligible = [f"console:u{i}" for i in range(12)]
    listing = tmp_path / "eligible.txt"
    listing.write_text("# members at the draw\n" + "\n".join(eligible) + "\n", encoding="utf-8")
    winners = draw(SEED, sorted(eligible), 3)
    command = ["giveaway", "verify", "--seed", SEED, "--commitment", commitment(SEED)]
    assert main([*command, "--eligible", str(listing), *winners]) == 0
    assert "verified" in capsys.readouterr().out
    forged = [w for w in eligible if w not in winners][:3]
    assert main([*command, "--eligible", str(listing), *forged]) == 1
    assert "NOT verified" in capsys.readouterr().err
    wrong_seed = ["giveaway", "verify", "--seed", "another seed entirely!!", "--commitment"]
    assert main([*wrong_seed, commitment(SEED), "--eligible", str(listing), *winners]) == 1
    assert "commitment" in capsys.readouterr().err


def test_a_giveaway_seed_never_shows_in_the_configuration() -> None:
    config = parse_config(
        f"""
[community]
name = "t"
timezone = "UTC"

[[campaigns]]
type = "giveaway"
seed = "{SEED}"
"""
    )
    assert isinstance(config.campaigns[0].settings["seed"], Secret)
    assert SEED not in repr(config)
