"""The orders a flag list can be read in, over every matching flag (not one page of them).

A sort is ``[-]field``: ``key`` (the default), ``name`` (case-insensitive), ``kind``, ``tags``
(the first tag), ``created``, ``updated``, or ``status:<environment>`` (on before off).  ``-``
reverses it.  Flags that tie on the field follow in key order, so keyset pages over any sort
neither repeat nor skip a flag.  The same order is available in SQL (:func:`order_sql`, for
stored lists) and in Python (:func:`sort_key`, for lists computed in memory such as stale flags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Invalid
from flagstaff.store.paging import decode_cursor, encode_cursor
from flagstaff.store.schema import flag_tags, flags

FIELDS = ("key", "name", "kind", "tags", "created", "updated", "status:<environment>")
_STATUS = re.compile(r"status:(?P<env>[A-Za-z0-9][A-Za-z0-9._-]{0,127})")
_TIMES = ("created", "updated")


@dataclass(frozen=True)
class FlagOrder:
    field: str  # one of FIELDS, "status" for status:<environment>
    descending: bool = False
    environment: str | None = None

    @property
    def text(self) -> str:
        name = f"status:{self.environment}" if self.field == "status" else self.field
        return ("-" if self.descending else "") + name


KEY_ORDER = FlagOrder("key")


def parse_order(text: str | None) -> FlagOrder:
    """``[-]field`` as described above; anything else is a 400 that lists the choices."""
    if not text:
        return KEY_ORDER
    descending = text.startswith("-")
    name = text[1:] if descending else text
    status = _STATUS.fullmatch(name)
    if status is not None:
        return FlagOrder("status", descending, status.group("env"))
    if name in FIELDS:
        return FlagOrder(name, descending)
    raise Invalid(
        f"sort {text!r} is not known: use one of {', '.join(FIELDS)}, with - in front for "
        "descending order",
        details={"field": "sort"},
    )


def _expression(order: FlagOrder) -> Any:
    match order.field:
        case "key":
            return flags.c.key
        case "name":
            return sa.func.lower(flags.c.name)
        case "kind":
            return sa.func.coalesce(flags.c.definition["kind"].as_string(), "")
        case "tags":
            first = sa.select(sa.func.min(flag_tags.c.tag)).where(flag_tags.c.flag_key == flags.c.key)
            return sa.func.coalesce(first.scalar_subquery(), "")
        case "created":
            return flags.c.created_at
        case "updated":
            return flags.c.updated_at
    enabled = flags.c.definition[("environments", str(order.environment), "enabled")].as_boolean()
    return sa.case((enabled == sa.true(), 0), else_=1)


def order_sql(query: sa.Select[Any], order: FlagOrder, cursor: str | None) -> sa.Select[Any]:
    """``query`` ordered by ``order`` (then key) and started after ``cursor``."""
    expression = _expression(order)
    if order.field == "key":
        query = query.order_by(flags.c.key.desc() if order.descending else flags.c.key)
        if cursor is not None:
            after = decode_cursor(cursor, expected=str)
            query = query.where(flags.c.key < after if order.descending else flags.c.key > after)
        return query
    query = query.add_columns(expression.label("sort_value")).order_by(
        expression.desc() if order.descending else expression, flags.c.key
    )
    if cursor is not None:
        value, key = _decode(order, cursor)
        beyond = expression < value if order.descending else expression > value
        query = query.where(sa.or_(beyond, sa.and_(expression == value, flags.c.key > key)))
    return query


def next_cursor(order: FlagOrder, row: sa.Row[Any]) -> str:
    """The cursor that continues after ``row`` (a row of :func:`order_sql`'s query)."""
    if order.field == "key":
        return encode_cursor(row.key)
    value = row.sort_value
    return encode_cursor([order.text, value.isoformat() if isinstance(value, datetime) else value, row.key])


def _decode(order: FlagOrder, cursor: str) -> tuple[Any, str]:
    position = decode_cursor(cursor, expected=list)
    if len(position) != 3 or position[0] != order.text or not isinstance(position[2], str):
        raise Invalid("cursor is not valid for this sort", details={"field": "cursor"})
    value = position[1]
    try:
        if order.field in _TIMES:
            return datetime.fromisoformat(value), position[2]
    except (TypeError, ValueError):
        raise Invalid("cursor is not valid", details={"field": "cursor"}) from None
    wanted = int if order.field == "status" else str
    if not isinstance(value, wanted) or isinstance(value, bool):
        raise Invalid("cursor is not valid", details={"field": "cursor"})
    return value, position[2]


def sort_key(order: FlagOrder, definition: dict[str, Any]) -> Any:
    """The Python equivalent of the SQL order for one flag's definition (its server fields
    included), ascending; callers reverse for descending and then tie-break by key."""
    match order.field:
        case "key":
            return definition["key"]
        case "name":
            return str(definition.get("name") or definition["key"]).lower()
        case "kind":
            return str(definition.get("kind") or "")
        case "tags":
            return min(definition.get("tags") or [""])
        case "created":
            return str(definition.get("created_at") or "")
        case "updated":
            return str(definition.get("updated_at") or "")
    config = (definition.get("environments") or {}).get(order.environment) or {}
    return 0 if config.get("enabled") else 1


def page_in_memory(
    order: FlagOrder, items: list[Any], definition_of: Any, *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of ``items`` in ``order`` (key tie-break) after ``cursor``, and the next cursor.
    Key order keeps plain key cursors; other orders carry the sort and the last position."""
    ordered = sorted(items, key=lambda item: definition_of(item)["key"], reverse=order.field == "key" and order.descending)
    if order.field != "key":
        ordered.sort(key=lambda item: sort_key(order, definition_of(item)), reverse=order.descending)
    if cursor is not None:
        if order.field == "key":
            after = decode_cursor(cursor, expected=str)
            ordered = [i for i in ordered if (definition_of(i)["key"] < after if order.descending else definition_of(i)["key"] > after)]
        else:
            position = decode_cursor(cursor, expected=list)
            if len(position) != 3 or position[0] != order.text or not isinstance(position[2], str):
                raise Invalid("cursor is not valid for this sort", details={"field": "cursor"})
            value, key = position[1], position[2]

            def later(item: Any) -> bool:
                mine = sort_key(order, definition_of(item))
                if not isinstance(mine, type(value)):
                    raise Invalid("cursor is not valid", details={"field": "cursor"})
                beyond = mine < value if order.descending else mine > value
                return bool(beyond or (mine == value and definition_of(item)["key"] > key))

            ordered = [i for i in ordered if later(i)]
    page = ordered[:limit]
    if len(ordered) <= limit or not page:
        return page, None
    last = definition_of(page[-1])
    if order.field == "key":
        return page, encode_cursor(last["key"])
    return page, encode_cursor([order.text, sort_key(order, last), last["key"]])
