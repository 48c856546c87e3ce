"""The segment expression language: precedence, names, and clear errors."""

from __future__ import annotations

import pytest

from communitykit import SegmentError, parse_expression
from communitykit.model._segments import Expr, parse_period


def shape(expr: Expr) -> object:
    if expr.op == "name":
        return expr.name
    return (expr.op, *[shape(arg) for arg in expr.args])


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("active", "active"),
        ("a or b and c", ("or", "a", ("and", "b", "c"))),
        ("not a and b", ("and", ("not", "a"), "b")),
        ("not (a or b)", ("not", ("or", "a", "b"))),
        ("a and b and c", ("and", "a", "b", "c")),
        (
            "  tier:gold   and\n(active or contributors) and not tag:staff ",
            ("and", "tier:gold", ("or", "active", "contributors"), ("not", "tag:staff")),
        ),
        ("tag:早鸟 or tag:vip-2026", ("or", "tag:早鸟", "tag:vip-2026")),
        ("not not a", ("not", ("not", "a"))),
    ],
)
def test_not_binds_tightest_then_and_then_or(text: str, tree: object) -> None:
    assert shape(parse_expression(text)) == tree


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a and", "ends where a segment name was expected"),
        ("(a or b", "expected ')' at the end"),
        ("a or b)", "unexpected ')' at character 7"),
        ("a b", "unexpected 'b' at character 3"),
        ("and a", "expected a segment name at character 1"),
        ("a && b", "unexpected '&' at character 3"),
        ("()", "expected a segment name at character 2"),
    ],
)
def test_bad_expressions_say_what_and_where(text: str, words: str) -> None:
    with pytest.raises(SegmentError) as caught:
        parse_expression(text)
    assert words in str(caught.value)


def test_periods() -> None:
    assert parse_period("30d").days == 30
    assert parse_period("month").unit == "month"
    for bad in ("0d", "month2", "30", "d", "-3d"):
        with pytest.raises(SegmentError, match="expected a period"):
            parse_period(bad)


@pytest.mark.parametrize(
    "text",
    ["(" * 3000 + "active" + ")" * 3000, "not " * 3000 + "active"],
)
def test_an_expression_nested_absurdly_deep_is_refused_not_a_crash(text: str) -> None:
    with pytest.raises(SegmentError, match="nested too deeply"):
        parse_expression(text)


def test_an_expression_nested_a_little_still_parses() -> None:
    assert shape(parse_expression("(" * 20 + "a" + ")" * 20)) == "a"
    assert shape(parse_expression("not not not a")) == ("not", ("not", ("not", "a")))
