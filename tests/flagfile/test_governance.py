"""Policies and webhook subscriptions in flag files: read with defaults, written back exactly,
and a file that would hold a secret, a wrong type or an unknown field refused at its line."""

from __future__ import annotations

import pytest

from flagstaff.flagfile import FlagFileError, dumps, loads

FILE = """\
policies:
  production: {required_approvals: 1, kill_requires_review: true}
flags: []
webhooks:
  - url: https://hooks.example.com/flagstaff
    events: [flag.killed]
    environments: [production]
    secret_env: HOOK_SECRET
  - url: https://hooks.slack.com/services/T/B/X
    format: slack
    active: false
"""


def test_read_with_defaults_and_written_back_exactly() -> None:
    file = loads(FILE)
    assert file.policies == {"production": {
        "required_approvals": 1, "author_may_approve": False, "approver_role": "editor",
        "kill_requires_review": True}}
    assert file.environments == ["production"]  # a policy's environment is one the file uses
    assert file.webhooks is not None
    first, second = file.webhooks
    assert first == {"url": "https://hooks.example.com/flagstaff", "description": "",
                     "format": "json", "events": ["flag.killed"], "flags": [],
                     "environments": ["production"], "tags": [], "active": True,
                     "secret_env": "HOOK_SECRET"}
    assert (second["format"], second["active"], second["events"]) == ("slack", False, ["*"])
    text = dumps(file.flags, file.segments, file.environments, policies=file.policies,
                 webhooks=file.webhooks)
    again = loads(text)
    assert (again.policies, again.webhooks) == (file.policies, file.webhooks)
    assert dumps(again.flags, again.segments, again.environments, policies=again.policies,
                 webhooks=again.webhooks) == text
    # Defaults are left out of a written subscription; a policy is written whole.
    assert "format: json" not in text and "kill_requires_review: true" in text


def test_a_file_without_them_does_not_manage_them() -> None:
    file = loads("flags: []\n")
    assert file.policies is None and file.webhooks is None
    assert "policies" not in dumps([], [], []) and "webhooks" not in dumps([], [], [])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("webhooks:\n  - url: https://x.example.com\n    secret: whsec_abc\n", 3, "secret_env"),
        ("webhooks:\n  - url: https://x.example.com\n    secret_env: 'no spaces'\n", 3,
         "environment variable name"),
        ("webhooks:\n  - events: ['*']\n", 2, "needs a url"),
        ("webhooks:\n  - url: a\n  - url: a\n", 3, "listed twice"),
        ("webhooks:\n  - url: a\n    events: flag.*\n", 3, "must be a list"),
        ("policies:\n  production:\n    required_approvals: yes\n", 3, "must be an integer"),
        ("policies:\n  production:\n    approvals: 1\n", 3, "unknown field"),
        ("policies:\n  Prod: {}\n", 2, "invalid environment key"),
        ("policies: [production]\n", 1, "mapping of environment"),
    ],
)
def test_refused_naming_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(FlagFileError) as info:
        loads("flags: []\n" + text, source="flags.yaml")
    assert f"flags.yaml:{line + 1}" in str(info.value) and message in str(info.value)
