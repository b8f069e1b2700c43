"""What one snapshot's OFREP answers encode to, remembered for as long as the snapshot lives.

The engine shares one outcome object per static result (``engine/types.py``), so most
evaluations end in an outcome seen before, and most bulk answers in a combination of outcomes
seen before: every visitor from the Netherlands gets the same four outcomes, whatever else their
context holds.  :class:`AnswerMemo` keeps, per snapshot (``CachedSnapshot.encoded``), an
outcome's encoded item and a combination's encoded body with its ETag, so neither is built,
encoded or hashed again.

Entries are found by the identity of the objects they were made from and keep those objects
alive: while an entry exists no other object can have its ids, so a hit is always the same
objects.  Both tables are bounded and start over when full (outcomes or combinations that do not
recur would otherwise grow them for the snapshot's life).
"""

from __future__ import annotations

from typing import Any

from flagstaff.engine import EvaluationDetail

MAX_ITEMS = 20_000
MAX_BODIES = 4_096

# (flag key, id of the outcome, client shape) -> (the outcome, its item's bytes)
ItemSlot = tuple[str, int, bool]
# (client shape, installation, id of the event streams, ids of the outcomes in key order)
BodySlot = tuple[Any, ...]


class AnswerMemo:
    """Encoded OFREP items and bulk bodies of one snapshot (module docstring)."""

    __slots__ = ("bodies", "items")

    def __init__(self) -> None:
        self.items: dict[ItemSlot, tuple[EvaluationDetail, bytes]] = {}
        # -> (what the ids in the slot name, kept alive; the body; its ETag)
        self.bodies: dict[BodySlot, tuple[tuple[Any, ...], bytes, str]] = {}

    def keep_item(self, slot: ItemSlot, detail: EvaluationDetail, raw: bytes) -> None:
        if len(self.items) >= MAX_ITEMS:
            self.items.clear()
        self.items[slot] = (detail, raw)

    def keep_body(self, slot: BodySlot, objects: tuple[Any, ...], raw: bytes, tag: str) -> None:
        if len(self.bodies) >= MAX_BODIES:
            self.bodies.clear()
        self.bodies[slot] = (objects, raw, tag)
