"""The experiment stage (contract §9): validation, allocation, assignment, precedence."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from flagstaff.engine import DefinitionError, Reason, compile_snapshot, validate_flag
from flagstaff.engine.bucketing import bucket
from tests.builders import EnvBuilder, cond, flag, snapshot

USERS = [f"user-{i}" for i in range(20_000)]


def _exp_flag(configure: Any, key: str = "f") -> Any:
    return flag(key).string({"control": "c", "treatment": "t", "other": "o"}, off="other").env(
        "production", configure
    )


def _snap(*flags: Any) -> Any:
    return compile_snapshot(snapshot(list(flags)))


def test_running_experiment_assigns_by_its_own_salt_with_allocation() -> None:
    snap = _snap(_exp_flag(lambda e: e.on().fallthrough("other").experiment(
        {"control": 50, "treatment": 50}, status="running", allocation=40, salt="exp-1")))
    seen: Counter[tuple[str | None, bool]] = Counter()
    for user in USERS:
        detail = snap.evaluate("f", {"key": user}, "x")
        seen[(detail.variant, detail.in_experiment)] += 1
        inside = bucket("exp-1.allocation", user) < 40_000
        assert detail.in_experiment is inside
        if inside:
            assert detail.reason is Reason.SPLIT
            expected = "control" if bucket("exp-1", user) < 50_000 else "treatment"
            assert detail.variant == expected
        else:
            assert (detail.variant, detail.reason) == ("other", Reason.FALLTHROUGH)
    # 40 % allocated, split evenly (binomial 5-sigma bands on 20,000 users)
    assert abs(seen[("other", False)] / len(USERS) - 0.6) < 0.02
    assert abs(seen[("control", True)] - seen[("treatment", True)]) < 5 * (len(USERS) * 0.2) ** 0.5


@pytest.mark.parametrize("status", ["draft", "paused", "completed"])
def test_not_running_means_normal_fallthrough(status: str) -> None:
    snap = _snap(_exp_flag(lambda e: e.on().fallthrough("other").experiment(
        {"control": 50, "treatment": 50}, status=status)))
    details = [snap.evaluate("f", {"key": u}, "x") for u in USERS[:500]]
    assert {(d.variant, d.reason, d.in_experiment) for d in details} == {
        ("other", Reason.FALLTHROUGH, False)}


def test_targets_rules_prerequisites_and_disabled_take_precedence() -> None:
    def configure(e: EnvBuilder) -> EnvBuilder:
        return (e.on().target("other", "vip").rule("de", cond("country", "in", "DE"), serve="other")
                .experiment({"control": 50, "treatment": 50}, status="running"))

    snap = _snap(_exp_flag(configure), flag("gate").boolean().on(serve="false"))
    assert snap.evaluate("f", {"key": "vip"}, "x").reason is Reason.TARGET_MATCH
    assert snap.evaluate("f", {"key": "u1", "country": "DE"}, "x").in_experiment is False
    assert snap.evaluate("f", {"key": "u1", "country": "FR"}, "x").in_experiment is True
    gated = _snap(_exp_flag(lambda e: configure(e).prerequisite("gate", "true")),
                  flag("gate").boolean().on(serve="false"))
    assert gated.evaluate("f", {"key": "u1"}, "x").reason is Reason.PREREQUISITE_FAILED
    off = _snap(_exp_flag(lambda e: configure(e).off()))
    assert off.evaluate("f", {"key": "u1"}, "x").in_experiment is False


def test_no_targeting_key_is_not_in_the_experiment() -> None:
    snap = _snap(_exp_flag(lambda e: e.on().fallthrough("other").experiment(
        {"control": 50, "treatment": 50}, status="running")))
    detail = snap.evaluate("f", {"country": "DE"}, "x")
    assert (detail.variant, detail.in_experiment) == ("other", False)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"status": "live"}, "status", "must be one of"),
        ({"allocation": 101}, "allocation", "0 to 100"),
        ({"allocation": 1.2345}, "allocation", "3 decimals"),
        ({"variations": [{"variant": "control", "weight": 60}, {"variant": "treatment", "weight": 30}]},
         "variations", "sum to 90"),
        ({"variations": [{"variant": "nope", "weight": 100}]}, "variations[0].variant", "unknown variant"),
        ({"variations": [{"variant": "control", "weight": 100}], "control": "control"},
         "variations", "at least two"),
        ({"control": "other"}, "control", "one of the variations"),
        ({"primary_metric": "bad metric"}, "primary_metric", "invalid metric key"),
        ({"metric_kind": "ratio"}, "metric_kind", "must be one of"),
        ({"salt": ""}, "salt", "characters"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_invalid_experiment_blocks_name_the_field(change: dict[str, Any], field: str, message: str) -> None:
    definition = _exp_flag(lambda e: e.on().experiment({"control": 50, "treatment": 50})).build()
    definition["environments"]["production"]["experiment"].update(change)
    with pytest.raises(DefinitionError) as caught:
        validate_flag(definition)
    assert caught.value.path == f"environments.production.experiment.{field}"
    assert message in caught.value.message


def test_defaults_and_flags_without_experiments_keep_their_shape() -> None:
    definition = _exp_flag(lambda e: e.on()).build()
    assert "experiment" not in validate_flag(definition)["environments"]["production"]
    definition["environments"]["production"]["experiment"] = {
        "variations": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}],
        "control": "control", "primary_metric": "checkout", "salt": "s",
    }
    block = validate_flag(definition)["environments"]["production"]["experiment"]
    assert (block["status"], block["allocation"], block["metric_kind"]) == ("draft", 100, "conversion")


ASSIGN = """
import json, sys
from flagstaff.engine import compile_snapshot
snap = compile_snapshot(json.loads(sys.stdin.read()))
print(json.dumps([snap.evaluate("f", {"key": f"user-{i}"}, None).variant for i in range(2000)]))
"""


def test_assignment_is_the_same_in_another_process() -> None:
    data = snapshot([_exp_flag(lambda e: e.on().fallthrough("other").experiment(
        {"control": 50, "treatment": 50}, status="running", allocation=70, salt="persist"))])
    import json

    here = [compile_snapshot(data).evaluate("f", {"key": f"user-{i}"}, None).variant for i in range(2000)]
    # A fresh interpreter has a different hash seed: assignment must not depend on it.
    out = subprocess.run([sys.executable, "-c", ASSIGN], input=json.dumps(data), capture_output=True,
                         text=True, check=True, env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert json.loads(out.stdout) == here
    assert set(here) == {"control", "treatment", "other"}
