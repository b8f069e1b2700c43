"""Code references over HTTP: a scan's report per repository, read back per flag."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.builders import flag
from tests.server.conftest import Tokens, auth


def test_report_replace_and_read_a_flags_references(client: TestClient, tokens: Tokens) -> None:
    client.post("/flags", json=flag("checkout").boolean().build(), headers=auth(tokens.editor))
    body = {"repository": "github.com/acme/shop", "revision": "4f30ee8", "references": [
        {"key": "checkout", "file": "src/pay.py", "line": 40, "kind": "sdk-call"},
        {"key": "checkout", "file": "src/cart.py", "line": 7},
        {"key": "typo-flag", "file": "src/cart.py", "line": 9, "kind": "sdk-call"}]}
    answer = client.post("/code-references", json=body, headers=auth(tokens.editor))
    assert answer.status_code == 200, answer.text
    assert answer.json()["reference_count"] == 3 and answer.json()["flag_count"] == 2

    read = client.get("/flags/checkout/code-references", headers=auth(tokens.viewer)).json()
    assert read["total"] == 2
    (repo,) = read["repositories"]
    assert repo["repository"] == "github.com/acme/shop" and repo["revision"] == "4f30ee8"
    assert [(r["file"], r["line"], r["kind"]) for r in repo["references"]] == [
        ("src/cart.py", 7, "literal"), ("src/pay.py", 40, "sdk-call")]

    body["references"] = []
    client.post("/code-references", json=body, headers=auth(tokens.editor))
    assert client.get("/flags/checkout/code-references", headers=auth(tokens.viewer)).json()["total"] == 0
    listed = client.get("/code-references", headers=auth(tokens.viewer)).json()["items"]
    assert [(r["repository"], r["reference_count"]) for r in listed] == [("github.com/acme/shop", 0)]
    gone = client.delete("/code-references", params={"repository": "github.com/acme/shop"},
                         headers=auth(tokens.editor))
    assert gone.status_code == 200
    assert client.get("/code-references", headers=auth(tokens.viewer)).json()["items"] == []


def test_bad_reports_and_roles_are_refused(client: TestClient, tokens: Tokens) -> None:
    ok = {"repository": "shop", "references": [{"key": "k", "file": "a.py", "line": 1}]}
    assert client.post("/code-references", json=ok, headers=auth(tokens.viewer)).status_code == 403
    for bad, field in (
        ({**ok, "repository": ""}, "repository"),
        ({**ok, "references": [{"key": "k", "file": "a.py", "line": 0}]}, "references[0].line"),
        ({**ok, "references": [{"key": "k", "file": "a.py", "line": "1"}]}, "references[0].line"),
        ({**ok, "references": [{"key": "k", "file": "a.py", "line": 1, "kind": "x"}]}, "references[0].kind"),
    ):
        answer = client.post("/code-references", json=bad, headers=auth(tokens.editor))
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["details"]["field"] == field
    assert client.get("/flags/nope/code-references", headers=auth(tokens.viewer)).status_code == 404
    missing = client.delete("/code-references", params={"repository": "nope"}, headers=auth(tokens.editor))
    assert missing.status_code == 404
