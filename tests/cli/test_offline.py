"""Commands that need no server: validate, scan -f, usage errors, --help."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flagstaff.flagfile import demo_path


def test_validate_accepts_the_demo_file(cli: Any) -> None:
    result = cli("validate", str(demo_path()))
    assert result.code == 0 and "4 flag(s)" in result.out
    summary = json.loads(cli("validate", str(demo_path()), "-o", "json").out)
    assert summary["environments"] == ["development", "staging", "production"]


def test_validate_names_the_line(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "flags:\n  - key: a\n    type: boolean\n    environments: {production: {enabled: yes please}}\n"
    )
    result = cli("validate", str(bad))
    assert result.code == 1
    assert f"{bad}:4" in result.err
    broken = tmp_path / "broken.yaml"
    broken.write_text("flags:\n  - key: [unclosed\n")
    assert f"{broken}:3" in cli("validate", str(broken)).err


def test_scan_with_a_flag_file(cli: Any, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "a.py").write_text('client.bool("self-evolution-enabled")\nclient.number("nope")\n')
    report = json.loads(cli("scan", str(code), "-f", str(demo_path()), "-o", "json").out)
    assert [r["key"] for r in report["unknown"]] == ["nope"]
    assert "model-provider" in report["unused"]
    assert cli("scan", str(code), "-f", str(demo_path()), "--strict").code == 1
    assert "flags never referenced" in cli("scan", str(code), "-f", str(demo_path())).out


def test_usage_errors_exit_1(cli: Any) -> None:
    assert cli("flags", "toggle", "x").code == 1  # --env is required
    assert cli("flags", "create").code == 1
    assert cli("no-such-command").code == 1


@pytest.mark.parametrize(
    "command",
    [
        ["flags", "list"],
        ["flags", "toggle"],
        ["apply"],
        ["export"],
        ["scan"],
        ["eval"],
        ["serve"],
        ["tokens", "create"],
    ],
)
def test_every_command_has_help_with_an_example(cli: Any, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.code == 0
    assert "Example" in result.out
