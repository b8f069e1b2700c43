"""The relay is its own layer: it has no store, and the server never imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import flagstaff.server

SERVER = Path(flagstaff.server.__file__).parent


def test_the_relay_loads_neither_the_store_nor_the_server_app() -> None:
    # A fresh interpreter: this test process may have imported anything already.
    code = ("import sys, flagstaff.relay.app, flagstaff.relay.main, flagstaff.cli.relay\n"
            "print(sorted(m for m in ('flagstaff.store', 'sqlalchemy', 'flagstaff.server.app',"
            " 'flagstaff.server.auth') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_server_never_imports_the_relay() -> None:
    offenders = [str(path.relative_to(SERVER)) for path in SERVER.rglob("*.py")
                 if "flagstaff.relay" in path.read_text()]
    assert offenders == []
