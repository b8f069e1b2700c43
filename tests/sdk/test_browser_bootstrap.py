"""The page bootstrap a Python back end renders: client-side flags only, in the bulk answer's
shapes, signed for secure mode, and inert inside HTML."""

from __future__ import annotations

import json
import re

import pytest

from flagstaff.sdk import Client
from flagstaff.sdk.browser import bootstrap_script, browser_bootstrap
from flagstaff.secure_mode import secure_mode_hash
from tests.builders import cond, flag, snapshot


def client() -> Client:
    flags = [
        flag("banner").boolean().client_side().on(),
        flag("copy").string({"a": "</script><script>alert(1)</script>", "b": "B"}).client_side()
        .env("production", lambda e: e.on().target("b", "vip")
             .rule("authored-rule", cond("plan", "in", "gold"), serve="b").fallthrough("a")),
        flag("server-only").boolean().on(),
    ]
    return Client(bootstrap=snapshot(flags), exposures="off")


def test_client_side_flags_only_without_targeting_details() -> None:
    with client() as sdk:
        answer = browser_bootstrap(sdk, {"targetingKey": "u1", "plan": "gold"})
    assert answer["context"] == {"targetingKey": "u1", "plan": "gold"}
    assert [f["key"] for f in answer["flags"]] == ["banner", "copy"]
    copy = answer["flags"][1]
    assert copy == {"key": "copy", "value": "B", "reason": "TARGETING_MATCH", "variant": "b",
                    "metadata": {}}
    assert "authored-rule" not in json.dumps(answer)


def test_secure_mode_signs_the_targeting_key() -> None:
    with client() as sdk:
        answer = browser_bootstrap(sdk, {"targetingKey": "u1", "secureModeHash": "forged"},
                                   secure_mode_secret="fsh_secret")
        assert answer["context"] == {"targetingKey": "u1",
                                     "secureModeHash": secure_mode_hash("fsh_secret", "u1")}
        with pytest.raises(ValueError, match="targetingKey"):
            browser_bootstrap(sdk, {"plan": "gold"}, secure_mode_secret="fsh_secret")


def test_the_script_element_cannot_be_closed_by_a_value() -> None:
    with client() as sdk:
        bootstrap = browser_bootstrap(sdk, {"targetingKey": "u2", "name": "a & b <c> \u2028"})
    element = bootstrap_script(bootstrap)
    inner = re.fullmatch(r'<script type="application/json" id="flagstaff-bootstrap">(.*)</script>',
                         element, re.S)
    assert inner is not None
    assert "<" not in inner.group(1) and ">" not in inner.group(1) and "&" not in inner.group(1)
    assert json.loads(inner.group(1)) == bootstrap
