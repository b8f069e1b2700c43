"""What users stored is printed as they wrote it, and an unknown environment is refused.

Flag values, names and server messages can hold square brackets; the CLI must print them as
text, never interpret them as Rich markup (which crashed ``eval`` on ``[/oops]``, coloured an
environment called ``[red]QA`` and cut ``[a-z0-9]`` out of validation messages).  And an
environment the server does not know is an error everywhere, also in ``flags list --env``,
which must not report every flag as off during an incident.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cli.conftest import Server

pytestmark = pytest.mark.slow


def test_flag_values_with_brackets_are_printed_verbatim(admin: Any, server: Server) -> None:
    created = admin(
        "flags", "create", "bracketed", "--type", "string", "--variant", "a=[/oops] closing",
        "--variant", "b=[bold]loud[/bold]", "--off-variant", "a", "--tag", "ops",
    )
    assert created.code == 0, created.err
    shown = admin("eval", "bracketed", "--env", "production", "--context", '{"key": "u1"}')
    assert shown.code == 0, shown.err
    assert '"[/oops] closing"' in shown.out
    assert "Traceback" not in shown.err

    got = admin("flags", "get", "bracketed")
    assert "[/oops] closing" in got.out and "[bold]loud[/bold]" in got.out
    audit = admin("flags", "audit", "bracketed")
    assert audit.code == 0 and "[bold]loud[/bold]" in audit.out


def test_names_with_markup_are_not_styled(admin: Any) -> None:
    assert admin("envs", "create", "qa-markup", "--name", "[red]QA").code == 0
    listed = admin("envs", "list")
    assert listed.code == 0 and "[red]QA" in listed.out

    created = admin("segments", "create", "markup-seg", "--name", "[b]VIPs[/b]")
    assert created.code == 0, created.err
    assert "[b]VIPs[/b]" in admin("segments", "list").out


def test_error_messages_keep_their_brackets(admin: Any) -> None:
    refused = admin("envs", "create", "Not A Key")
    assert refused.code == 1
    assert "^[a-z0-9][a-z0-9._-]{0,127}$" in refused.err


def test_flags_list_refuses_an_unknown_environment(admin: Any) -> None:
    assert admin("flags", "toggle", "new-orchestrator-v2", "--on", "--env", "production").code == 0
    unknown = admin("flags", "list", "--env", "prod")
    assert unknown.code == 1
    assert "no environment 'prod'" in unknown.err and "production" in unknown.err
    assert unknown.out == ""
    as_json = admin("-o", "json", "flags", "list", "--env", "prod")
    assert as_json.code == 1 and as_json.out == ""

    known = admin("-o", "json", "flags", "list", "--env", "production")
    assert known.code == 0
    flags = {f["key"]: f for f in json.loads(known.out)}
    assert flags["new-orchestrator-v2"]["environments"]["production"]["enabled"] is True
