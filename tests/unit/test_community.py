from __future__ import annotations

import pytest

from communitykit import Community, Group, ModelError


def make() -> Community:
    return Community(
        name="Python Beijing",
        purpose="Python developers in Beijing",
        timezone="Asia/Shanghai",
        groups=[
            Group(key="tg-1", platform="telegram", group_id="-100", size_cap=2, overflow_order=1),
            Group(key="tg-2", platform="telegram", group_id="-200", size_cap=2, overflow_order=2),
            Group(key="dc", platform="discord", group_id="555"),
        ],
    )


def test_group_id_change_keeps_the_group_identity() -> None:
    community = make().with_group_id_changed("telegram", "-100", "-1009999")
    group = community.group("telegram", "-1009999")
    assert group is not None
    assert group.key == "tg-1"
    # events still carrying the old id find the same group
    assert community.group("telegram", "-100") == group
    assert group.previous_ids == ("-100",)
    # doing it twice changes nothing
    assert community.with_group_id_changed("telegram", "-100", "-1009999") == community


def test_group_id_change_cannot_steal_another_groups_id() -> None:
    with pytest.raises(ModelError, match="already belongs to group 'tg-2'"):
        make().with_group_id_changed("telegram", "-100", "-200")


def test_unknown_group_id_change_is_an_error() -> None:
    with pytest.raises(ModelError, match="no telegram group has id '-999'"):
        make().with_group_id_changed("telegram", "-999", "-1")


def test_overflow_points_to_the_next_group_with_room() -> None:
    community = make()
    assert community.overflow_target("telegram", {"tg-1": 1}).key == "tg-1"  # type: ignore[union-attr]
    assert community.overflow_target("telegram", {"tg-1": 2}).key == "tg-2"  # type: ignore[union-attr]
    assert community.overflow_target("telegram", {"tg-1": 2, "tg-2": 2}) is None
    # no cap: always room
    assert community.overflow_target("discord", {"dc": 10_000}).key == "dc"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": "x", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        (
            {
                "name": "x",
                "groups": [
                    Group(key="a", platform="telegram", group_id="1"),
                    Group(key="a", platform="telegram", group_id="2"),
                ],
            },
            "share the key 'a'",
        ),
        (
            {
                "name": "x",
                "groups": [
                    Group(key="a", platform="telegram", group_id="1"),
                    Group(key="b", platform="telegram", group_id="1"),
                ],
            },
            "both claim telegram id '1'",
        ),
    ],
)
def test_bad_community_values_are_model_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        Community(**kwargs)  # type: ignore[arg-type]


def test_size_cap_must_be_positive() -> None:
    with pytest.raises(ModelError, match="size_cap must be a positive whole number"):
        Group(key="a", platform="telegram", group_id="1", size_cap=0)
