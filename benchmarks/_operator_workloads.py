"""Operator rows of the engine benchmark: each operator's cost, and many operands vs long values.

Imported by ``bench_engine.py`` (which writes the results into its section of
docs/benchmarks.md); kept apart so that file stays readable.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

from _report import median_ns
from tests.builders import cond, flag, snapshot

from flagstaff.engine import compile_snapshot
from flagstaff.engine.texts import MAX_TEXT_LENGTH
from flagstaff.engine.values import compile_regex


def _one_rule(*conditions: dict[str, Any]) -> Any:
    return flag("f").env("production", lambda e: e.on().rule("r", *conditions, serve="true").fallthrough("false"))


def _opt(condition: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {**condition, **options}


# (row label, condition, matching context, non-matching context)
OPERATOR_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("`equals` (baseline)", cond("plan", "equals", "pro"), {"plan": "pro"}, {"plan": "free"}),
    ("`equals` + `ignore_case`", _opt(cond("plan", "equals", "Pro"), ignore_case=True),
     {"plan": "PRO"}, {"plan": "free"}),
    ("`in` 100 strings + `ignore_case`", _opt(cond("country", "in", *[f"C{i}" for i in range(100)]),
                                            ignore_case=True), {"country": "c42"}, {"country": "de"}),
    ("`ends_with` + `ignore_case`", _opt(cond("email", "ends_with", "@ACME.com"), ignore_case=True),
     {"email": "bob@acme.COM"}, {"email": "bob@example.com"}),
    ("`contains` 100 operands", cond("ua", "contains", *[f"bot-{i}/" for i in range(100)]),
     {"ua": "Mozilla/5.0 (compatible; bot-42/2.1)"}, {"ua": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}),
    ("`in_cidr` IPv4, 3 networks", cond("ip", "in_cidr", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
     {"ip": "192.168.1.20"}, {"ip": "8.8.8.8"}),
    ("`in_cidr` IPv6", cond("ip", "in_cidr", "fd00::/8", "2001:db8::/32"),
     {"ip": "2001:db8::7"}, {"ip": "2a00:1450::1"}),
    ("`in_cidr` 1,000 networks", cond("ip", "in_cidr", *[f"10.{i // 256}.{i % 256}.0/24" for i in range(1000)]),
     {"ip": "10.3.200.9"}, {"ip": "11.0.0.1"}),
    ("`semver_gt` strict (baseline)", cond("version", "semver_gt", "2.0.0"), {"version": "2.3.1"},
     {"version": "1.9.0"}),
    ("`semver_gt` + `lenient`", _opt(cond("version", "semver_gt", "2"), lenient=True),
     {"version": "v2.3"}, {"version": "1.9"}),
    ("`semver_range` `^1.2.3 \\|\\| ~0.9`", cond("version", "semver_range", "^1.2.3 || ~0.9"),
     {"version": "1.4.0"}, {"version": "2.0.0"}),
    ("`now_between` (one window)", cond(None, "now_between", "2020-01-01T00:00:00Z/2100-01-01T00:00:00Z"),
     {}, None),
    ("`now_after` + `timezone`", _opt(cond(None, "now_after", "2020-01-01T09:00:00"), timezone="Europe/Berlin"),
     {}, None),
]


def interleaved(fn: Callable[[], object], base: Callable[[], object], *, rounds: int = 9) -> tuple[float, float]:
    """``(median ns of fn, median of fn / base)`` with ``fn`` and its baseline timed in
    alternating rounds, so that load from other work on the machine weighs on both alike: the
    ratio stays meaningful when the absolute figures do not."""
    timers = timeit.Timer(fn), timeit.Timer(base)
    numbers = [max(1, t.autorange()[0] // 4) for t in timers]
    own: list[float] = []
    ratios: list[float] = []
    for _ in range(rounds):
        ns = timers[0].timeit(numbers[0]) / numbers[0] * 1e9
        base_ns = timers[1].timeit(numbers[1]) / numbers[1] * 1e9
        own.append(ns)
        ratios.append(ns / base_ns)
    return statistics.median(own), statistics.median(ratios)


def operator_rows() -> list[list[str]]:
    """Per operator: ns when the rule matches and when it does not, each also as a multiple of
    the baseline operator's time measured in the same rounds."""
    _, base_condition, base_hit, base_miss = OPERATOR_CASES[0]
    base_eval = compile_snapshot(snapshot([_one_rule(base_condition)])).evaluate
    base_hit_ctx, base_miss_ctx = {"key": "user-123", **base_hit}, {"key": "user-123", **base_miss}
    rows = []
    for label, condition, hit, miss in OPERATOR_CASES:
        ev = compile_snapshot(snapshot([_one_rule(condition)])).evaluate
        hit_ctx = {"key": "user-123", **hit}
        assert ev("f", hit_ctx, False).value is True, label
        ns, ratio = interleaved(lambda c=hit_ctx, ev=ev: ev("f", c, False),
                                lambda: base_eval("f", base_hit_ctx, False))
        cells = [label, f"{ns:.0f}", f"{ratio:.2f}x"]
        if miss is None:
            cells += ["-", "-"]
        else:
            miss_ctx = {"key": "user-123", **miss}
            assert ev("f", miss_ctx, False).value is False, label
            ns, ratio = interleaved(lambda c=miss_ctx, ev=ev: ev("f", c, False),
                                    lambda: base_eval("f", base_miss_ctx, False))
            cells += [f"{ns:.0f}", f"{ratio:.2f}x"]
        rows.append(cells)
    rows.extend(_prerequisite_rows())
    return rows


def _prerequisite_rows() -> list[list[str]]:
    parent = flag("parent").string({"a": "a", "b": "b", "c": "c"}, off="c").env(
        "production", lambda e: e.on().fallthrough("b"))
    maintenance = flag("maintenance").env("production", lambda e: e.off())
    flags = [
        parent, maintenance,
        flag("one").env("production", lambda e: e.on().prerequisite("parent", "b").fallthrough("true")),
        flag("any").env("production", lambda e: e.on().prerequisite_any("parent", "a", "b").fallthrough("true")),
        flag("off").env("production", lambda e: e.on().prerequisite_off("maintenance").fallthrough("true")),
    ]
    ev = compile_snapshot(snapshot(flags)).evaluate
    ctx = {"key": "user-123"}
    rows = []
    for label, key in [("prerequisite, one variant (baseline)", "one"),
                       ("prerequisite, any of 2 variants", "any"), ("prerequisite, parent off", "off")]:
        assert ev(key, ctx, False).value is True
        ns, ratio = interleaved(lambda k=key: ev(k, ctx, False), lambda: ev("one", ctx, False))
        rows.append([label, f"{ns:.0f}", f"{ratio:.2f}x", "-", "-"])
    return rows


def _time_ms(fn: Callable[[], object], budget: float = 2.0) -> float:
    """Median ms of ``fn`` over up to 7 calls or ``budget`` seconds (slow cases run few times)."""
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while len(samples) < 7 and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return samples[len(samples) // 2]


def _one_at_a_time(operator: str, operands: list[str], folded: bool) -> Callable[[str], bool]:
    """How the engine compiled a multi-operand condition before: every operand in turn."""
    needles = tuple(o.casefold() for o in operands) if folded else tuple(operands)
    if operator == "starts_with":
        return lambda v: (v.casefold() if folded else v).startswith(needles)
    if operator == "ends_with":
        return lambda v: (v.casefold() if folded else v).endswith(needles)
    return lambda v: any(n in (v.casefold() if folded else v) for n in needles)


def bomb_rows() -> list[list[str]]:
    """10,000 operands of 100 characters against long values, before (one operand at a time)
    and after (the compiled forms), in the same run."""
    operands = [f"{i:05d}" + "q" * 95 for i in range(10_000)]
    rows = []
    for operator, length, folded in [
        ("contains", 65_536, False), ("contains", 8_192, False), ("contains", 8_192, True),
        ("starts_with", 65_536, False), ("starts_with", 65_536, True),
        ("ends_with", 65_536, False), ("ends_with", 65_536, True),
    ]:
        condition = cond("a", operator, *operands)
        if folded:
            condition["ignore_case"] = True
        start = time.perf_counter()
        snap = compile_snapshot(snapshot([_one_rule(condition)]))
        compile_ms = (time.perf_counter() - start) * 1000
        value = "z" * length
        ctx = {"key": "u", "a": value}
        before = _one_at_a_time(operator, operands, folded)
        assert snap.evaluate("f", ctx, False).value is False and before(value) is False
        before_ms = _time_ms(lambda b=before, v=value: b(v))
        after_ms = median_ns(lambda s=snap, c=ctx: s.evaluate("f", c, False), repeats=5) / 1e6
        label = f"`{operator}`{' + `ignore_case`' if folded else ''}, {length:,}-char value"
        if operator == "contains" and length > MAX_TEXT_LENGTH:
            label += " (over the cap: not scanned)"
        rows.append([label, f"{before_ms:.2f}", f"{after_ms:.4f}", f"{before_ms / after_ms:,.0f}x",
                     f"{compile_ms:.0f}"])
    rows.append(_regex_row())
    return rows


def _regex_row() -> list[str]:
    patterns = [rf"^user-{i}-[0-9]+@example\.com$" for i in range(1000)]
    start = time.perf_counter()
    snap = compile_snapshot(snapshot([_one_rule(cond("a", "regex", *patterns))]))
    compile_ms = (time.perf_counter() - start) * 1000
    value = "user-" + "7" * (MAX_TEXT_LENGTH - 5)
    ctx = {"key": "u", "a": value}
    regexes = tuple(compile_regex(p) for p in patterns)
    assert snap.evaluate("f", ctx, False).value is False
    before_ms = _time_ms(lambda: any(r.search(value) for r in regexes))
    after_ms = median_ns(lambda: snap.evaluate("f", ctx, False), repeats=5) / 1e6
    return [f"`regex` 1,000 patterns, {len(value):,}-char value", f"{before_ms:.2f}", f"{after_ms:.4f}",
            f"{before_ms / after_ms:,.0f}x", f"{compile_ms:.0f}"]
