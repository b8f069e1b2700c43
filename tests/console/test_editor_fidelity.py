"""The flag editor writes exactly what the person changed (a real browser).

For every editable field of the targeting editor and the flag settings: open the page, change
that one field, save, and the audit record of the save names exactly that path (plus, for a
rollout, a ``reassign`` entry with the share of users moved).  A save with no change writes
nothing.  An unrelated edit leaves the variant of 10,000 fixed contexts unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from flagstaff.engine import compile_snapshot
from tests.builders import snapshot
from tests.console.browser import ADMIN, Server, Shots, needs_chromium, sign_in

# The module's server and browser start inside the first test: give a loaded machine room.
pytestmark = [needs_chromium, pytest.mark.slow, pytest.mark.timeout(600)]

CONTEXTS = [
    {"targetingKey": f"user-{i}", "tenant": {"id": f"tenant-{i % 50}"}, "country": ["DE", "FR", "US"][i % 3],
     "email": f"user-{i}@{'beta.io' if i % 7 == 0 else 'example.com'}"}
    for i in range(10_000)
]
# The demo's flag, as the demo file writes it (the spec's shape): a 10 % rollout of true.
ORCHESTRATOR = {
    "key": "new-orchestrator-v2", "name": "New Orchestrator V2", "type": "boolean",
    "defaultValue": False, "enabled": True, "tags": ["orchestrator", "beta"], "owner": "core-team",
    "description": "Enable new orchestrator implementation",
    "rules": [{"id": "beta-testers", "conditions": [
        {"attribute": "tenant.id", "operator": "in", "value": ["tenant-beta-1", "tenant-beta-2"]}],
        "value": True}],
    "fallthrough": {"percentage": 10, "value": True},
}
THEME = {
    "key": "checkout-theme", "name": "Checkout theme", "description": "colours", "type": "string",
    "kind": "experiment", "owner": "team-web", "tags": ["checkout"],
    # Deliberately not in alphabetical order, nor in the order the rollouts list them.
    "variants": {"red": "R", "green": "G", "blue": "B"}, "off_variant": "red",
    "environments": {"staging": {
        "enabled": True,
        "prerequisites": [{"flag": "new-orchestrator-v2", "variant": "true"}],
        "targets": [{"variant": "blue", "values": ["u-blue"]}, {"variant": "red", "values": ["u-red"]}],
        "rules": [
            {"id": "de", "description": "Germany", "conditions": [
                {"attribute": "country", "operator": "in", "values": ["DE"], "negate": False}],
             "serve": {"rollout": {"variations": [{"variant": "green", "weight": 10},
                                                  {"variant": "blue", "weight": 90}],
                                   "bucket_by": "tenant.id"}}},
            {"id": "beta", "conditions": [
                {"attribute": "email", "operator": "ends_with", "values": ["@beta.io"], "negate": False,
                 "ignore_case": True}],
             "serve": {"variant": "red"}},
        ],
        "fallthrough": {"rollout": {"variations": [{"variant": "blue", "weight": 30},
                                                   {"variant": "red", "weight": 70}]}},
    }},
}


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _records(server: Server, key: str) -> list[dict[str, Any]]:
    return list(server.api("GET", "/audit", params={"kind": "flag", "key": key, "limit": 500})["items"])


def _served(server: Server, key: str, env: str) -> list[Any]:
    """The variant of every fixed context, from the stored definitions through the engine."""
    definitions = [server.api("GET", f"/flags/{k}") for k in ("new-orchestrator-v2", "checkout-theme")]
    present = [d for d in definitions if d is not None]
    snap = compile_snapshot(snapshot(
        [{k: v for k, v in d.items() if k not in ("version", "state", "created_at", "updated_at",
                                                     "default_value")} for d in present],
        environment=env,
    ))
    return [snap.evaluate(key, ctx).variant for ctx in CONTEXTS]


@pytest.fixture(scope="module")
def flags(server: Server) -> Server:
    server.api("POST", "/flags", json=ORCHESTRATOR)
    server.api("POST", "/flags", json=THEME)
    return server


def _save(page: Any, env: str = "staging") -> None:
    page.locator("#editor").get_by_role("button", name=f"Save {env}").click()
    expect(page.locator(".save-status")).not_to_have_text("Saving…")
    expect(page.locator(".save-status")).to_contain_text(re.compile("Saved|No changes"))


def _open(page: Any, key: str, env: str = "staging") -> Any:
    page.goto(f"/ui/flags/{key}?env={env}")
    editor = page.locator("#editor")
    expect(editor.get_by_role("button", name=f"Save {env}")).to_be_visible()
    return editor


def test_unrelated_edit_of_the_demo_rollout_moves_no_user(
    flags: Server, new_page: Callable[[], Any], shots: Shots
) -> None:
    before = _served(flags, "new-orchestrator-v2", "staging")
    assert 900 < before.count("true") < 1_100  # the 10 % rollout
    records = len(_records(flags, "new-orchestrator-v2"))
    page = new_page()
    sign_in(page, ADMIN, "/ui/flags/new-orchestrator-v2?env=staging")
    editor = _open(page, "new-orchestrator-v2")
    editor.locator("[data-field='environments.staging.rules[0].description']").fill("beta tenants")
    _save(page)
    expect(page.locator(".save-status")).to_have_text("Saved (version 2).")
    shots.take(page, "editor-description-only", full_page=True)
    after = _records(flags, "new-orchestrator-v2")
    assert len(after) == records + 1
    assert [(d["path"], d["op"]) for d in after[-1]["diff"]] == [
        ("environments.staging.rules[0].description", "add")]
    assert _served(flags, "new-orchestrator-v2", "staging") == before


def test_a_save_without_changes_writes_nothing(flags: Server, new_page: Callable[[], Any]) -> None:
    for key in ("new-orchestrator-v2", "checkout-theme"):
        for env in ("staging", "production"):
            records = _records(flags, key)
            page = new_page()
            sign_in(page, ADMIN, f"/ui/flags/{key}?env={env}")
            _open(page, key, env)
            _save(page, env)
            expect(page.locator(".save-status")).to_contain_text("No changes to save")
            assert _records(flags, key) == records, (key, env)


def _fill(field: str, value: str) -> Callable[[Any], None]:
    return lambda editor: editor.locator(f"[data-field='{field}']").fill(value)


def _weights(path: str, *values: str) -> Callable[[Any], None]:
    def edit(editor: Any) -> None:
        for index, value in enumerate(values):
            editor.locator(f"[data-field='{path}.variations[{index}].weight']").fill(value)

    return edit


S = "environments.staging"
# (what is edited, how, the paths the audit diff must name, the reassign entries expected)
EDITS: list[tuple[str, Callable[[Any], None], list[str], list[tuple[str, float, bool]]]] = [
    ("name", _fill("name", "Theme of the checkout"), ["name"], []),
    ("description", _fill("description", "colours of the checkout"), ["description"], []),
    ("owner", _fill("owner", "team-checkout"), ["owner"], []),
    ("tags", _fill("tags", "checkout, colour"), ["tags"], []),
    ("off variant", _fill("off_variant", "blue"), ["off_variant"], []),
    ("variants", _fill("variants", '{"red": "R2", "green": "G", "blue": "B"}'), ["variants.red"], []),
    ("target values", lambda e: e.get_by_label("Serve red to these targeting keys").fill("u-red\nu-red-2"),
     [f"{S}.targets[1].values"], []),
    ("prerequisite variant",
     lambda e: e.locator(f"[data-field='{S}.prerequisites[0].variant']").select_option("false"),
     [f"{S}.prerequisites[0].variant"], []),
    ("rule description", _fill(f"{S}.rules[0].description", "DACH"), [f"{S}.rules[0].description"], []),
    ("condition attribute", _fill(f"{S}.rules[0].conditions[0].attribute", "geo.country"),
     [f"{S}.rules[0].conditions[0].attribute"], []),
    ("condition operator",
     lambda e: e.locator(f"[data-field='{S}.rules[0].conditions[0].operator']").select_option("not_in"),
     [f"{S}.rules[0].conditions[0].operator"], []),
    ("condition values", _fill(f"{S}.rules[0].conditions[0].values", "DE\nAT"),
     [f"{S}.rules[0].conditions[0].values"], []),
    ("condition negate", lambda e: e.locator(f"[data-field='{S}.rules[0].conditions[0].negate']").check(),
     [f"{S}.rules[0].conditions[0].negate"], []),
    ("ignore case", lambda e: e.locator(f"[data-field='{S}.rules[1].conditions[0].ignore_case']").uncheck(),
     [f"{S}.rules[1].conditions[0].ignore_case"], []),
    ("rule serve", lambda e: e.locator(f"[data-field='{S}.rules[1].serve']").select_option("v:green"),
     [f"{S}.rules[1].serve.variant"], []),
    ("rule rollout weights", _weights(f"{S}.rules[0].serve.rollout", "20", "80"),
     [f"{S}.rules[0].serve.rollout.variations[0].weight", f"{S}.rules[0].serve.rollout.variations[1].weight"],
     [(f"{S}.rules[0].serve", 0.1, True)]),
    ("bucket by", _fill(f"{S}.rules[0].serve.rollout.bucket_by", "org.id"),
     [f"{S}.rules[0].serve.rollout.bucket_by"], [(f"{S}.rules[0].serve", 0.32, False)]),
    ("default rollout weights", _weights(f"{S}.fallthrough.rollout", "40", "60"),
     [f"{S}.fallthrough.rollout.variations[0].weight", f"{S}.fallthrough.rollout.variations[1].weight"],
     [(f"{S}.fallthrough", 0.1, True)]),
    ("rule id", _fill(f"{S}.rules[0].id", "dach"), [f"{S}.rules[0].id"], []),
]


def test_each_field_changed_alone_is_the_only_path_written(
    flags: Server, new_page: Callable[[], Any], shots: Shots
) -> None:
    page = new_page()
    sign_in(page, ADMIN, "/ui/flags/checkout-theme?env=staging")
    for what, edit, paths, reassigned in EDITS:
        records = _records(flags, "checkout-theme")
        editor = _open(page, "checkout-theme")
        if what in ("name", "description", "owner", "tags", "off variant", "variants"):
            editor.locator("details.settings summary").click()
        edit(editor)
        _save(page)
        expect(page.locator(".save-status")).to_contain_text("Saved (version")
        after = _records(flags, "checkout-theme")
        assert len(after) == len(records) + 1, what
        diff = after[-1]["diff"]
        assert sorted(d["path"] for d in diff if d["op"] != "reassign") == sorted(paths), what
        moved = [(d["path"], d["share"], d["exact"]) for d in diff if d["op"] == "reassign"]
        assert moved == reassigned, what
        if reassigned:
            # The editor says what the save did to the users, in the audit's words.
            expect(page.locator(".save-status")).to_contain_text("of its users to another variant")
            shots.take(page, "editor-reassigned", full_page=False)
