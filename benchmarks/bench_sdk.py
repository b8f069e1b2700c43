"""SDK benchmark: client overhead over the engine, OpenFeature overhead, memory and event apply.

Run: ``.venv/bin/python benchmarks/bench_sdk.py`` (writes the "sdk" section of
docs/benchmarks.md). Workloads W1-W3 are the engine benchmark's (docs/evaluation.md): the SDK
rows call ``client.bool(key, ctx, default=False)`` on a client holding the same compiled
snapshot, the engine rows call ``snapshot.evaluate(key, ctx, False)``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import median_ns, table, write_section
from bench_engine import CTX, KEYS, _w2_env
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from tests.builders import cond, flag, snapshot

from flagstaff.openfeature import FlagstaffProvider
from flagstaff.sdk import Client
from flagstaff.sdk.stream import Change

WORKLOADS = [("W1", "w1"), ("W2", "w2"), ("W3 targets", "w3a"), ("W3 rule", "w3b")]


def paired(baseline: Callable[[], object], candidate: Callable[[], object]) -> tuple[float, float]:
    """Interleaved rounds, best median of each: the machine is shared, so noise only adds time
    and alternating keeps a noisy stretch from landing on one side only."""
    base, cand = [], []
    for _ in range(5):
        base.append(median_ns(baseline, repeats=3))
        cand.append(median_ns(candidate, repeats=3))
    return min(base), min(cand)


def overhead() -> list[list[str]]:
    raw = snapshot([
        flag("w1").on(),
        flag("w2").env("production", _w2_env(10)),
        flag("w3a").env("production", lambda e: e.on().target("true", *KEYS).fallthrough("false")),
        flag("w3b").env("production", lambda e: e.on().rule("r", cond("key", "in", *KEYS), serve="true")
                        .fallthrough("false")),
    ])
    client = Client(bootstrap=raw)
    snap = client._state.snapshot
    assert snap is not None
    ev, sdk = snap.evaluate, client.bool
    rows = []
    for name, key in WORKLOADS:
        assert sdk(key, CTX, default=False) == ev(key, CTX, False).value
        engine_ns, sdk_ns = paired(
            lambda key=key: ev(key, CTX, False),  # type: ignore[misc]
            lambda key=key: sdk(key, CTX, default=False),  # type: ignore[misc]
        )
        ratio = sdk_ns / engine_ns
        rows.append([name, f"{engine_ns:.0f}", f"{sdk_ns:.0f}", f"{ratio:.2f}x",
                     "yes" if ratio <= 1.2 else "NO"])
    client.close()
    return rows


def openfeature_overhead() -> list[str]:
    of_ctx = EvaluationContext("user-123", {k: v for k, v in CTX.items() if k != "key"})
    raw = snapshot([flag("w1").on()])
    api.set_provider_and_wait(FlagstaffProvider(Client(bootstrap=raw)), domain="ours")
    api.set_provider_and_wait(
        InMemoryProvider({"w1": InMemoryFlag("on", {"on": True, "off": False})}), domain="theirs"
    )
    ours, theirs = api.get_client("ours"), api.get_client("theirs")
    assert ours.get_boolean_value("w1", False, of_ctx) is True
    assert theirs.get_boolean_value("w1", False, of_ctx) is True
    theirs_ns, ours_ns = paired(
        lambda: theirs.get_boolean_value("w1", False, of_ctx),
        lambda: ours.get_boolean_value("w1", False, of_ctx),
    )
    api.clear_providers()
    ratio = ours_ns / theirs_ns
    return ["W1 via OpenFeature", f"{theirs_ns:.0f}", f"{ours_ns:.0f}", f"{ratio:.2f}x",
            "yes" if ratio <= 1.2 else "NO"]


def big_client() -> tuple[float, float, float, float]:
    """(MiB of a 10,000-flag client, median and p99 µs to apply one flag event, cold compile s)."""
    base = flag("f").env("production", _w2_env(10)).resolved()
    flags = {f"f{i}": {**base, "key": f"f{i}"} for i in range(10_000)}
    raw = {"environment": "production", "version": 1, "flags": flags, "segments": {}}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    client = Client(bootstrap=raw)
    compile_s = time.perf_counter() - start
    del raw, flags
    gc.collect()
    mib = (tracemalloc.get_traced_memory()[0] - before) / 2**20
    tracemalloc.stop()
    timings = []
    for i in range(300):
        changed = {**base, "key": f"f{i}", "version": 2 + i}
        change = Change("upsert_flag", f"f{i}", changed, str(2 + i))
        t0 = time.perf_counter()
        client._state.apply(change)
        timings.append((time.perf_counter() - t0) * 1e6)
    assert client._state.version == 301
    client.close()
    timings.sort()
    return mib, statistics.median(timings), timings[int(len(timings) * 0.99) - 1], compile_s


def main() -> None:
    rows = overhead()
    rows.append(openfeature_overhead())
    for row in rows:
        print(row, flush=True)
    mib, apply_med, apply_p99, compile_s = big_client()
    size_rows = [
        ["memory of a client holding 10,000 flags (tracemalloc)", f"{mib:.1f} MiB", "reported"],
        ["apply one flag event at 10,000 flags, median", f"{apply_med:.0f} µs", "< 1000 µs"],
        ["apply one flag event at 10,000 flags, p99", f"{apply_p99:.0f} µs", "< 1000 µs"],
        ["bootstrap (compile) a 10,000-flag client", f"{compile_s * 1000:.0f} ms", "-"],
    ]
    print(table(["measure", "value", "target"], size_rows))
    markdown = (
        "### SDK overhead over the engine (ns per evaluation, median)\n\n"
        "Engine: `snapshot.evaluate(key, ctx, False)`; SDK: `client.bool(key, ctx, default=False)`."
        " The OpenFeature row compares `get_boolean_value` through `FlagstaffProvider` with the same"
        " call through openfeature-sdk's own `InMemoryProvider` (static flag).\n\n"
        + table(["workload", "baseline ns", "SDK ns", "ratio", "<= 1.2x"], rows)
        + "\n\n### A client holding 10,000 flags (W2-shaped: 10 rules + 50/50 split)\n\n"
        + table(["measure", "value", "target"], size_rows)
    )
    print(markdown)
    write_section("sdk", markdown)


if __name__ == "__main__":
    main()
