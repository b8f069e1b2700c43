from __future__ import annotations

from pathlib import Path

from flagstaff.cli.scan import scan, scan_text


def test_sdk_calls_and_known_literals_are_found() -> None:
    code = (
        'client.bool("new-checkout", ctx)\n'
        "value = client.detail('model-provider')\n"
        'OrchestratorFlag = "new-orchestrator-v2"\n'
        'provider.get_boolean_value("typo-flag", False)\n'
        'client.getStringValue(`js-flag`, "x")\n'
        'print("unrelated-string")\n'
    )
    known = {"new-checkout", "model-provider", "new-orchestrator-v2", "js-flag"}
    refs = list(scan_text(code, known, "app.py"))
    assert [(r.line, r.key, r.kind) for r in refs] == [
        (1, "new-checkout", "sdk-call"),
        (2, "model-provider", "sdk-call"),
        (3, "new-orchestrator-v2", "literal"),
        (4, "typo-flag", "sdk-call"),
        (5, "js-flag", "sdk-call"),
    ]


def test_scan_reports_unused_and_unknown_and_skips_vendor_dirs(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text('if flags.bool("used"):\n    flags.bool("gone")\n')
    for skipped in (".git", ".venv", "node_modules"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "x.py").write_text('flags.bool("unused")\n')
    (tmp_path / "blob.bin").write_bytes(b'\0flags.bool("unused")')
    result = scan(tmp_path, ["used", "unused"])
    assert [(r.file, r.key) for r in result.references] == [
        ("src/main.py", "used"),
        ("src/main.py", "gone"),
    ]
    assert [r.key for r in result.unknown] == ["gone"]
    assert result.unused == ["unused"]
    assert result.to_json()["unused"] == ["unused"]
