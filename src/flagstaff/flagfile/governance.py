"""Approval policies and webhook subscriptions in flag files.

``policies:`` maps an environment to its approval policy; ``webhooks:`` lists subscriptions,
each known by its URL.  Both are declarative: a field left out has its default (a policy's
is "off": no approvals, any editor, the author may not approve, kills without review; a
subscription's is every event of every flag in every environment, JSON, active), so a file
says the whole of what it manages and applying it twice changes nothing the second time.

Secrets are never written in a file: a subscription names the environment variable that holds
its signing secret (``secret_env: NAME``), read by ``apply`` when it creates the subscription.
This module only checks the file's shape (names, types); the server judges the values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from flagstaff.flagfile.yamltree import Path

POLICY_DEFAULTS: dict[str, Any] = {
    "required_approvals": 0, "author_may_approve": False, "approver_role": "editor",
    "kill_requires_review": False,
}  # fmt: skip
WEBHOOK_DEFAULTS: dict[str, Any] = {
    "description": "", "format": "json", "events": ["*"], "flags": [], "environments": [],
    "tags": [], "active": True,
}  # fmt: skip
# The order fields are written in (url first: it is what names a subscription).
WEBHOOK_ORDER = ("url", "description", "format", "events", "flags", "environments", "tags",
                 "active", "secret_env")  # fmt: skip
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TYPES: dict[str, tuple[type, str]] = {
    "required_approvals": (int, "an integer"), "author_may_approve": (bool, "true or false"),
    "approver_role": (str, "a role name"), "kill_requires_review": (bool, "true or false"),
    "url": (str, "a URL"), "description": (str, "a string"), "format": (str, "json or slack"),
    "events": (list, "a list"), "flags": (list, "a list"), "environments": (list, "a list"),
    "tags": (list, "a list"), "active": (bool, "true or false"),
    "secret_env": (str, "an environment variable name"),
}  # fmt: skip

Fail = Callable[[Path, str], Exception]


def _fields(item: Any, where: Path, known: Mapping[str, Any], fail: Fail) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise fail(where, "must be a mapping")
    for name, value in item.items():
        if name == "secret" and "secret_env" in known:
            raise fail((*where, name), "secrets are not written in flag files: put the secret in "
                       "an environment variable and name it here with `secret_env: NAME`")
        if name not in known:
            raise fail((*where, name), f"unknown field (expected one of {', '.join(known)})")
        kind, what = _TYPES[name]
        wrong_bool = kind is int and isinstance(value, bool)
        if not isinstance(value, kind) or wrong_bool:
            raise fail((*where, name), f"must be {what}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise fail((*where, name), "must be a list of strings")
    return dict(item)


def read_policies(data: Any, fail: Fail, env_key: re.Pattern[str]) -> dict[str, dict[str, Any]]:
    """``policies:`` as {environment: full policy}, defaults filled in."""
    if not isinstance(data, dict):
        raise fail(("policies",), "must be a mapping of environment to policy")
    result: dict[str, dict[str, Any]] = {}
    for env, item in data.items():
        if not isinstance(env, str) or not env_key.match(env):
            raise fail(("policies", env), f"invalid environment key {env!r}")
        result[env] = {**POLICY_DEFAULTS, **_fields(item, ("policies", env), POLICY_DEFAULTS, fail)}
    return result


def read_webhooks(data: Any, fail: Fail) -> list[dict[str, Any]]:
    """``webhooks:`` as full subscriptions (defaults filled in), ``secret_env`` kept if given."""
    if not isinstance(data, list):
        raise fail(("webhooks",), "must be a list of subscriptions")
    known = {**WEBHOOK_DEFAULTS, "url": None, "secret_env": None}
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        fields = _fields(item, ("webhooks", i), known, fail)
        if "url" not in fields:
            raise fail(("webhooks", i), "a subscription needs a url")
        if fields["url"] in seen:
            raise fail(("webhooks", i, "url"), f"{fields['url']!r} is listed twice")
        seen.add(fields["url"])
        if "secret_env" in fields and not _ENV_VAR.match(fields["secret_env"]):
            raise fail(("webhooks", i, "secret_env"), "must be an environment variable name")
        result.append({"url": fields["url"], **WEBHOOK_DEFAULTS,
                       **{k: v for k, v in fields.items() if k != "url"}})
    return result


def policy_view(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a file holds, from a file's or the server's policy."""
    return {name: policy.get(name, default) for name, default in POLICY_DEFAULTS.items()}


def webhook_view(webhook: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a file holds (no secret, no server bookkeeping), defaults filled in."""
    return {"url": webhook["url"],
            **{name: webhook.get(name, default) for name, default in WEBHOOK_DEFAULTS.items()}}


def dump_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    """Every field: a reviewer reads the whole rule, not only where it differs from off."""
    return policy_view(policy)


def dump_webhook(webhook: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that differ from the defaults, in a fixed order."""
    view = webhook_view(webhook)
    out = {"url": view["url"]}
    out.update((k, view[k]) for k in WEBHOOK_ORDER[1:-1] if view[k] != WEBHOOK_DEFAULTS[k])
    if webhook.get("secret_env"):
        out["secret_env"] = webhook["secret_env"]
    return out
