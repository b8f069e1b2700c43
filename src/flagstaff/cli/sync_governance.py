"""Planning ``apply`` for a flag file's approval policies and webhook subscriptions.

Both are compared as the fields a file holds (:mod:`flagstaff.flagfile.governance`), so a file
exported from a server, or applied once already, plans nothing.  A file without ``policies:``
or ``webhooks:`` leaves the server's as they are; neither is ever deleted (a policy is turned
off with ``required_approvals: 0``; subscriptions the file does not name are reported).

Order matters for policies: one the file turns off or loosens is applied before the flags, one
it turns on or tightens after them, so a file that changes production and protects it applies
in one run.  Subscriptions are made first, so they hear the changes that follow.

A subscription's secret is never in the file: ``secret_env`` names the environment variable
that holds it, read when ``apply`` creates the subscription (the server never shows a secret
again, so an existing subscription's secret is neither compared nor sent).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flagstaff.cli.client import ApiClient, path
from flagstaff.cli.diff import diff
from flagstaff.cli.errors import CliError
from flagstaff.cli.plan import Action
from flagstaff.flagfile import FlagFile
from flagstaff.flagfile.governance import POLICY_DEFAULTS, policy_view, webhook_view


@dataclass
class GovernancePlan:
    before_flags: list[Action] = field(default_factory=list)
    after_flags: list[Action] = field(default_factory=list)
    # Server subscriptions the file does not name (None: the file does not manage webhooks).
    unmanaged_webhooks: list[str] | None = None


def plan_governance(client: ApiClient, file: FlagFile, *, environment: str | None) -> GovernancePlan:
    """The policy and webhook actions of an apply."""
    plan = GovernancePlan()
    # Subscriptions first, so they hear every change that follows; they span environments,
    # so an --env apply leaves them alone.
    if file.webhooks is not None and environment is None:
        _plan_webhooks(client, file.webhooks, plan)
    if file.policies is not None:
        _plan_policies(client, file.policies, environment, plan)
    return plan


def _loosens(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return int(new["required_approvals"]) < int(old["required_approvals"]) or (
        new["required_approvals"] == 0
    )


def _plan_policies(
    client: ApiClient, wanted: dict[str, dict[str, Any]], environment: str | None,
    plan: GovernancePlan,
) -> None:
    current = {p["environment"]: policy_view(p) for p in client.get("/policies")["items"]}
    for env, policy in wanted.items():
        if environment is not None and env != environment:
            continue
        old = current.get(env, dict(POLICY_DEFAULTS))  # an environment apply creates is off
        changes = diff(old, policy)
        if not changes:
            continue
        step = Action("policy", env, "update", dict(policy), changes=changes)
        (plan.before_flags if _loosens(old, policy) else plan.after_flags).append(step)


def _plan_webhooks(client: ApiClient, wanted: list[dict[str, Any]], plan: GovernancePlan) -> None:
    by_url: dict[str, list[dict[str, Any]]] = {}
    for hook in client.get("/webhooks")["items"]:
        by_url.setdefault(hook["url"], []).append(hook)
    for hook in wanted:
        url = hook["url"]
        body = {k: v for k, v in hook.items() if k != "secret_env"}
        existing = by_url.get(url, [])
        if len(existing) > 1:
            ids = ", ".join(str(h["id"]) for h in existing)
            raise CliError(
                f"webhooks: {len(existing)} subscriptions on the server send to {url} (ids {ids}); "
                "a flag file manages one per URL. Nothing applied: delete the extra ones "
                "(flagstaff webhooks delete ID) and run again"
            )
        if not existing:
            if hook.get("secret_env"):
                body["secret"] = _secret(url, hook["secret_env"])
            plan.before_flags.append(Action("webhook", url, "create", body, changes=[]))
            continue
        changes = diff(webhook_view(existing[0]), body)
        if changes:
            plan.before_flags.append(
                Action("webhook", url, "update", body, changes=changes,
                       target=path("webhooks", str(existing[0]["id"])))
            )
    named = {hook["url"] for hook in wanted}
    plan.unmanaged_webhooks = sorted(url for url in by_url if url not in named)


def _secret(url: str, name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise CliError(
            f"webhooks: {url} takes its signing secret from the environment variable {name} "
            "(secret_env), which is not set. Nothing applied."
        )
    return value


def execute_governance(client: ApiClient, step: Action) -> bool:
    """Send one policy or webhook action; False when ``step`` is neither."""
    if step.kind == "policy":
        client.send("PUT", path("environments", step.key, "policy"), step.body)
    elif step.kind == "webhook" and step.op == "create":
        client.send("POST", "/webhooks", step.body)
    elif step.kind == "webhook":
        client.send("PATCH", str(step.target), step.body)
    else:
        return False
    return True


def exported_policies(
    client: ApiClient, environments: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The policies that are on, for the environments exported (in their order)."""
    wanted = list(environments)
    on = {p["environment"]: policy_view(p) for p in client.get("/policies")["items"]
          if p["required_approvals"]}  # fmt: skip
    return {env: on[env] for env in wanted if env in on}


@dataclass
class ExportedWebhooks:
    hooks: list[dict[str, Any]]  # by URL, without secrets
    # Subscriptions left out because an earlier one (lower id) sends to the same URL.
    left_out: list[int] = field(default_factory=list)


def exported_webhooks(client: ApiClient) -> ExportedWebhooks | None:
    """The subscriptions, one per URL; None when the token may not read them (not an admin)."""
    try:
        hooks = client.get("/webhooks")["items"]
    except CliError as exc:
        if exc.status == 403:
            return None
        raise
    kept: dict[str, dict[str, Any]] = {}
    left_out: list[int] = []
    for hook in sorted(hooks, key=lambda h: int(h["id"])):
        if hook["url"] in kept:
            left_out.append(int(hook["id"]))
        else:
            kept[hook["url"]] = webhook_view(hook)
    return ExportedWebhooks([kept[url] for url in sorted(kept)], left_out)
