"""Bucketing: reference vectors, stability across processes, monotonic growth, uniformity."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flagstaff.engine import ErrorCode, Reason, Snapshot, compile_snapshot
from flagstaff.engine.bucketing import bucket, hash32, murmur3_32
from tests.builders import flag, snapshot

# Published MurmurHash3_x86_32 test vectors (data, seed, expected).
REFERENCE_VECTORS = [
    (b"", 0, 0x00000000),
    (b"", 1, 0x514E28B7),
    (b"\xff\xff\xff\xff", 0, 0x76293B50),
    (b"Hello, world!", 1234, 0xFAF6CDB3),
    (b"The quick brown fox jumps over the lazy dog", 0, 0x2E4FF723),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"abc", 0, 0xB3DD93FA),
]


@pytest.mark.parametrize(("data", "seed", "expected"), REFERENCE_VECTORS)
def test_murmur3_reference_vectors(data: bytes, seed: int, expected: int) -> None:
    assert murmur3_32(data, seed) == expected


def test_hash_is_over_utf8_of_salt_dot_value() -> None:
    assert hash32("flag", "user-ü") == murmur3_32("flag.user-ü".encode())
    assert bucket("flag", "user-ü") == (murmur3_32("flag.user-ü".encode()) * 100_000) >> 32


# The table in docs/evaluation.md; changing bucketing breaks this test (never change silently).
DOC_VECTORS = [
    ("new-checkout", "user-123", 1780679856, 41459),
    ("new-checkout", "user-1", 240508746, 5599),
    ("w2", "user-123", 3900823160, 90823),
    ("exp", "tenant-42", 4102596721, 95521),
    ("new-checkout", "ü-user", 2329354242, 54234),
]


@pytest.mark.parametrize(("salt", "value", "hashed", "bucketed"), DOC_VECTORS)
def test_documented_vectors(salt: str, value: str, hashed: int, bucketed: int) -> None:
    assert hash32(salt, value) == hashed
    assert bucket(salt, value) == bucketed


def _rollout_snapshot(true_weight: float) -> Snapshot:
    f = flag("grow").env(
        "production", lambda e: e.on().fallthrough_rollout(true=true_weight, false=100 - true_weight)
    )
    return compile_snapshot(snapshot([f]))


def test_growing_a_rollout_only_adds_users() -> None:
    ten, twenty = _rollout_snapshot(10), _rollout_snapshot(20)
    keys = [f"user-{i}" for i in range(20_000)]
    at_10 = {k for k in keys if ten.evaluate("grow", {"key": k}).value is True}
    at_20 = {k for k in keys if twenty.evaluate("grow", {"key": k}).value is True}
    assert at_10 < at_20
    assert 0.09 < len(at_10) / len(keys) < 0.11
    assert 0.19 < len(at_20) / len(keys) < 0.21


def test_same_variant_in_another_process() -> None:
    keys = [f"user-{i}" for i in range(200)]
    here = [bucket("cross-process", k) for k in keys]
    code = (
        "from flagstaff.engine.bucketing import bucket\n"
        f"print(','.join(str(bucket('cross-process', f'user-{{i}}')) for i in range({len(keys)})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345"})
    assert [int(x) for x in out.stdout.strip().split(",")] == here


def test_buckets_are_uniform_chi_square() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    counts = [0] * 100
    for i in range(1_000_000):
        counts[bucket("uniformity", f"user-{i}") // 1000] += 1
    result = scipy_stats.chisquare(counts)
    assert result.pvalue > 0.001


def test_unusable_bucketing_value_gets_off_variant() -> None:
    f = flag("split").env("production", lambda e: e.on().fallthrough_rollout(true=100, false=0))
    snap = compile_snapshot(snapshot([f]))
    assert snap.evaluate("split", {"key": "u"}).variant == "true"
    for ctx in ({"key": 1.5}, {"key": ["a"]}, {"key": True}):
        detail = snap.evaluate("split", ctx)
        assert detail.variant == "false", ctx
        assert detail.reason.value == "SPLIT"


def test_split_by_absent_targeting_key_is_targeting_key_missing() -> None:
    f = flag("split").env("production", lambda e: e.on().fallthrough_rollout(true=100, false=0))
    other = flag("by-org").env(
        "production", lambda e: e.on().fallthrough_rollout(true=100, false=0, bucket_by="org.id")
    )
    snap = compile_snapshot(snapshot([f, other]))
    for ctx in ({}, {"key": None}, {"targetingKey": None, "country": "DE"}):
        detail = snap.evaluate("split", ctx, "fallback")
        assert (detail.value, detail.variant, detail.reason) == ("fallback", None, Reason.ERROR), ctx
        assert detail.error_code is ErrorCode.TARGETING_KEY_MISSING
    # A split by another attribute does not need the targeting key: a missing attribute there
    # is no bucketing value, which serves the off variant.
    assert snap.evaluate("by-org", {}).variant == "false"
    assert snap.evaluate("by-org", {"org": {"id": "o1"}}).variant == "true"


def test_integer_bucketing_value_hashes_as_decimal() -> None:
    f = flag("split").env(
        "production", lambda e: e.on().fallthrough_rollout(true=50, false=50, bucket_by="org.id")
    )
    snap = compile_snapshot(snapshot([f]))
    variants = {snap.evaluate("split", {"org": {"id": i}}).variant for i in range(50)}
    assert variants == {"true", "false"}
    for i in range(50):
        assert (snap.evaluate("split", {"key": "x", "org": {"id": i}}).variant
                == snap.evaluate("split", {"key": "y", "org": {"id": str(i)}}).variant)


def test_bucket_follows_declared_ranges() -> None:
    f = flag("ranges").string({"a": "A", "b": "B", "c": "C"}).env(
        "production", lambda e: e.on().fallthrough_rollout(a=25.5, b=0, c=74.5)
    )
    snap = compile_snapshot(snapshot([f]))
    for i in range(500):
        key = f"user-{i}"
        b = bucket("ranges", key)
        expected = "a" if b < 25_500 else "c"
        assert snap.evaluate("ranges", {"key": key}).variant == expected


def test_rollout_salt_overrides_flag_salt_and_key() -> None:
    f = flag("salty").salt("s1").env("production", lambda e: e.on().fallthrough_rollout(true=50, false=50))
    g = flag("salty2").env("production", lambda e: e.on().fallthrough_rollout(true=50, false=50, salt="s1"))
    snap = compile_snapshot(snapshot([f, g]))
    for i in range(200):
        key = f"user-{i}"
        expected = "true" if bucket("s1", key) < 50_000 else "false"
        assert snap.evaluate("salty", {"key": key}).variant == expected
        assert snap.evaluate("salty2", {"key": key}).variant == expected
