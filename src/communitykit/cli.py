"""The ``communitykit`` command. A thin layer over the public Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from communitykit._errors import CommunityKitError
from communitykit._version import __version__

__all__ = ["main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _cmd_demo(args: argparse.Namespace) -> int:
    from communitykit._demo import run_model_demo

    result = run_model_demo(members=args.members, days=args.days, seed=args.seed)
    print(
        f"Simulated {result.members} members over {result.days} days "
        f"({result.events} events, seed {args.seed})."
    )
    print(
        f"Points issued {result.points_issued}, spent {result.points_spent}, "
        f"held back by daily caps {result.points_capped}."
    )
    print("Members by tier:")
    for tier, count in result.tiers.items():
        print(f"  {tier:<10} {count:>6}")
    print("Top members:")
    for member, balance, tier in result.top:
        print(f"  {member:<8} {balance:>6} points  {tier}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="communitykit",
        description="Community operations: members, tiers, points, rules and campaigns.",
    )
    parser.add_argument("--version", action="version", version=f"communitykit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="run a simulated community and print a summary")
    demo.add_argument("--members", type=_positive, default=500, help="members (default 500)")
    demo.add_argument("--days", type=_positive, default=30, help="simulated days (default 30)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args)
    except CommunityKitError as exc:
        print(f"communitykit: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
