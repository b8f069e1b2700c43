"""What a delivery's body looks like: the event as JSON, or a Slack-compatible message.

The JSON body is the stored payload (event, actor, target, flag, environment, version, diff,
context) plus the delivery id and a link to the console page of what changed.  The ``slack``
format is an incoming-webhook message (``text`` plus ``blocks``) that Slack, Mattermost and
Rocket.Chat accept.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

DIFF_LINES = 8


def link(base: str, payload: dict[str, Any]) -> str:
    target = payload.get("target") or {}
    kind, key = target.get("kind"), str(target.get("key", ""))
    flag = payload.get("flag")
    if kind == "change_request":
        path = f"/ui/changes/{quote(key, safe='')}"
    elif kind == "webhook":
        path = f"/ui/webhooks/{quote(key, safe='')}"
    elif kind == "schedule":
        path = "/ui/schedules"
    elif flag:
        path = f"/ui/flags/{quote(str(flag), safe='')}"
    else:
        path = "/ui/audit"
    return base.rstrip("/") + path


def _escape(text: str) -> str:
    # Slack mrkdwn: these three are the only characters that must be escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def headline(payload: dict[str, Any]) -> str:
    target = payload.get("target") or {}
    what = f"{target.get('kind', '')} {target.get('key', '')}".replace("_", " ")
    env = payload.get("environment")
    where = f" in {env}" if env else ""
    action = str(payload.get("event", "")).split(".", 1)[-1].replace("_", " ")
    return f"{what}: {action}{where} by {payload.get('actor', '?')}"


def slack_message(payload: dict[str, Any], url: str) -> dict[str, Any]:
    title = _escape(headline(payload))
    lines = [
        f"• `{_escape(str(d.get('path')))}`: {_escape(_value(d.get('old')))} → "
        f"{_escape(_value(d.get('new')))}"
        for d in (payload.get("diff") or [])[:DIFF_LINES]
    ]
    more = len(payload.get("diff") or []) - DIFF_LINES
    if more > 0:
        lines.append(f"… and {more} more change(s)")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*  <{url}|open>"}}
    ]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    return {"text": f"Flagstaff: {title}", "blocks": blocks}


def body(payload: dict[str, Any], *, fmt: str, delivery_id: int, base_url: str) -> bytes:
    url = link(base_url, payload)
    if fmt == "slack":
        message = slack_message(payload, url)
    else:
        message = {**payload, "delivery": delivery_id, "link": url}
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
