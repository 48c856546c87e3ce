"""The parameterised segment types every community has: ``posted`` and ``contributors``.

See ``docs/segments.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from communitykit._plugin_types import SegmentType
from communitykit.hookspecs import hookimpl
from communitykit.model._segments import contributors_segment, posted_segment

__all__ = ["communitykit_segment_types"]


@hookimpl
def communitykit_segment_types() -> Iterable[SegmentType]:
    return [
        SegmentType(
            name="posted",
            factory=posted_segment,
            description="members who posted N messages (optionally with media) in a period",
        ),
        SegmentType(
            name="contributors",
            factory=contributors_segment,
            description="members whose messages drew N replies and reactions in the last D days",
        ),
    ]
