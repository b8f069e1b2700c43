"""The spec's four predefined flags (spec 003 §4), hand-written in canonical form."""

from __future__ import annotations

from typing import Any

from flagstaff.engine import Reason, compile_snapshot
from flagstaff.engine.bucketing import bucket
from tests.builders import cond, flag, snapshot


def demo_snapshot() -> Any:
    return compile_snapshot(snapshot([
        flag("self-evolution-enabled").env("production", lambda e: e.on()
            .rule("enterprise-only", cond("tenant.type", "equals", "enterprise"), serve="true")
            .fallthrough("false")),
        flag("parallel-agents-limit").number({"default": 4, "enterprise": 15, "professional": 10},
                                             off="default").env("production", lambda e: e.on()
            .rule("enterprise-higher-limit", cond("tenant.type", "equals", "enterprise"), serve="enterprise")
            .rule("professional-medium-limit", cond("tenant.type", "equals", "professional"),
                  serve="professional")
            .fallthrough("default")),
        flag("new-orchestrator-v2").env("production", lambda e: e.on()
            .rule("beta-testers", cond("tenant.id", "in", "tenant-beta-1", "tenant-beta-2"), serve="true")
            .fallthrough_rollout(true=10, false=90)),
        flag("model-provider").string({"anthropic": "anthropic", "openai": "openai"}, off="anthropic")
            .env("production", lambda e: e.on()
            .rule("openai-override", cond("tenant.settings.preferredProvider", "equals", "openai"),
                  serve="openai")
            .fallthrough("anthropic")),
    ]))


def test_self_evolution() -> None:
    snap = demo_snapshot()
    assert snap.evaluate("self-evolution-enabled", {"key": "u", "tenant": {"type": "enterprise"}}).value is True
    assert snap.evaluate("self-evolution-enabled", {"key": "u", "tenant": {"type": "starter"}}).value is False


def test_parallel_agents_limit() -> None:
    snap = demo_snapshot()
    for tenant_type, expected in [("enterprise", 15), ("professional", 10), ("starter", 4)]:
        assert snap.evaluate("parallel-agents-limit", {"tenant": {"type": tenant_type}}).value == expected


def test_new_orchestrator_beta_and_ten_percent() -> None:
    snap = demo_snapshot()
    d = snap.evaluate("new-orchestrator-v2", {"key": "u", "tenant": {"id": "tenant-beta-2"}})
    assert (d.value, d.rule_id) == (True, "beta-testers")
    keys = [f"user-{i}" for i in range(10_000)]
    on = [k for k in keys if snap.evaluate("new-orchestrator-v2", {"key": k}).value]
    assert on == [k for k in keys if bucket("new-orchestrator-v2", k) < 10_000]
    assert 0.09 < len(on) / len(keys) < 0.11
    assert snap.evaluate("new-orchestrator-v2", {"key": "user-0"}).reason is Reason.SPLIT


def test_model_provider() -> None:
    snap = demo_snapshot()
    ctx = {"key": "u", "tenant": {"settings": {"preferredProvider": "openai"}}}
    assert snap.evaluate("model-provider", ctx).value == "openai"
    assert snap.evaluate("model-provider", {"key": "u"}).value == "anthropic"
