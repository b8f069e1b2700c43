"""``If-None-Match`` against the current tag: the tag sent back as it came, weak or in a list,
and ``*`` all match; anything else does not."""

from __future__ import annotations

import pytest

from flagstaff.server.etags import none_match

CURRENT = '"86f3ffaf1114af7c5c03001a5453c538"'


@pytest.mark.parametrize(("header", "matches"), [
    (None, False),
    (CURRENT, True),
    (f"W/{CURRENT}", True),
    (f'"other", {CURRENT}', True),
    (f' {CURRENT} ', True),
    ("*", True),
    ('"other"', False),
    (CURRENT[:-1], False),
    ("", False),
])
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert none_match(header, CURRENT) is matches
