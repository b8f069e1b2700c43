"""A rollout's bucket_by may list several attribute paths: the first usable value buckets."""

from __future__ import annotations

from typing import Any

import pytest

from flagstaff.engine import DefinitionError, Reason, compile_snapshot, validate_flag
from flagstaff.engine.bucketing import bucket
from tests.builders import flag, snapshot

PATHS = ["user.id", "tenant.id", "key"]


def half(bucket_by: Any) -> Any:
    return flag("f").env("production", lambda e: e.on().fallthrough_rollout(true=50, false=50, bucket_by=bucket_by))


def test_first_usable_path_buckets() -> None:
    snap = compile_snapshot(snapshot([half(PATHS)]))

    def served(ctx: dict[str, Any]) -> bool:
        detail = snap.evaluate("f", ctx)
        assert detail.reason is Reason.SPLIT and detail.error_code is None
        return bool(detail.value)

    users = [f"user-{i}" for i in range(200)]
    expected = [bucket("f", u) < 50_000 for u in users]
    assert [served({"user": {"id": u}}) for u in users] == expected
    assert [served({"tenant": {"id": u}}) for u in users] == expected
    assert [served({"key": u}) for u in users] == expected
    assert [served({"user": {"id": u}, "tenant": {"id": "x"}, "key": "y"}) for u in users] == expected
    # Not usable (a float, a list): the next path decides.
    assert [served({"user": {"id": 1.5}, "tenant": {"id": u}}) for u in users] == expected
    assert served({"user": {"id": 7}}) == (bucket("f", "7") < 50_000)  # integers in decimal


def test_nothing_usable_serves_the_off_variant_without_an_error() -> None:
    detail = compile_snapshot(snapshot([half(PATHS)])).evaluate("f", {"country": "DE"}, "caller")
    assert (detail.value, detail.reason, detail.error_code) == (False, Reason.SPLIT, None)


@pytest.mark.parametrize(("bucket_by", "path"), [
    ([], "bucket_by"), (["a", "b", "c", "d", "e"], "bucket_by"), (["a", 5], "bucket_by[1]"), (["a", ""], "bucket_by[1]"),
])
def test_invalid_lists(bucket_by: Any, path: str) -> None:
    with pytest.raises(DefinitionError) as info:
        validate_flag(half(bucket_by).build())
    assert info.value.path == f"environments.production.fallthrough.rollout.{path}"
