"""``flagstaff scan --report`` against a real server process, and ``flags archive`` refusing a
flag that scanned code still references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def test_scan_report_then_archive_warns_and_needs_force(admin: Any, tmp_path: Path) -> None:
    for key in ("legacy-banner", "unused-switch"):
        assert admin("flags", "create", key).code == 0
    code = tmp_path / "shop"
    (code / "src").mkdir(parents=True)
    (code / "src" / "app.py").write_text(
        'import flagstaff\n\nif client.bool("legacy-banner", ctx):\n    show()\n'
    )
    (code / "src" / "names.py").write_text('BANNER = "legacy-banner"\n')

    assert "--report needs --repository" in admin("scan", str(code), "--report").err
    reported = admin("scan", str(code), "--report", "--repository", "github.com/acme/shop",
                     "--revision", "abc123")
    assert reported.code == 0, reported.err
    assert "reported 2 reference(s) to 1 flag key(s) as repository github.com/acme/shop" in reported.out
    stored = json.loads(admin("scan", str(code), "--report", "--repository", "github.com/acme/shop",
                              "-o", "json").out)["report"]
    assert stored["reference_count"] == 2 and stored["revision"] is None  # replaced, not added

    refused = admin("flags", "archive", "legacy-banner")
    assert refused.code != 0
    assert "WARNING: legacy-banner is referenced in code: 2 place(s) in 1 repository" in refused.err
    assert "src/app.py:3" in refused.err and "src/names.py:1" in refused.err
    assert "not archived" in refused.err and "--force" in refused.err
    assert json.loads(admin("flags", "get", "legacy-banner", "-o", "json").out)["state"] == "active"

    assert admin("flags", "archive", "unused-switch").code == 0  # no references: no warning
    forced = admin("flags", "archive", "legacy-banner", "--force")
    assert forced.code == 0 and "WARNING" in forced.out and "archived flag legacy-banner" in forced.out

    (code / "src" / "app.py").write_text("show()\n")  # the references are removed and rescanned
    (code / "src" / "names.py").unlink()
    assert admin("flags", "restore", "legacy-banner").code == 0
    assert admin("scan", str(code), "--report", "--repository", "github.com/acme/shop").code == 0
    assert admin("flags", "archive", "legacy-banner").code == 0
