"""The engine imports nothing of ours outside flagstaff.engine (and no heavy dependencies)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import flagstaff.engine

ENGINE_DIR = Path(flagstaff.engine.__file__).parent


def test_engine_sources_import_only_engine_modules() -> None:
    offenders = []
    for path in ENGINE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.startswith("flagstaff") and not n.startswith("flagstaff.engine")]
    assert offenders == []


def test_importing_the_engine_loads_no_other_layer() -> None:
    code = (
        "import sys, flagstaff.engine\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'sqlalchemy', 'scipy', 'httpx')"
        " or m.startswith(('flagstaff.store', 'flagstaff.server', 'flagstaff.sdk', 'flagstaff.cli'))]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_engine_never_reads_a_clock_itself() -> None:
    # The evaluation time comes from the clock given to compile_snapshot (time.time by
    # default), so tests control it; no engine code may call a clock directly.
    clocks = {("time", "time"), ("time", "monotonic"), ("time", "time_ns"), ("datetime", "now"),
              ("datetime", "utcnow"), ("date", "today"), ("datetime", "today")}
    offenders = []
    for path in ENGINE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and (node.func.value.id, node.func.attr) in clocks):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
