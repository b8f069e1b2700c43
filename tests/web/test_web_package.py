"""``@flagstaff/web``'s own tests (vitest, in jsdom against the real stock OFREP provider) and
its type check, run from the Python suite so CI runs them too."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.web import webbuild


@pytest.fixture(scope="module")
def node_modules() -> None:
    reason = webbuild.node_missing()
    if reason:
        pytest.skip(reason)
    webbuild.install()


def npm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["npm", *args], cwd=webbuild.ROOT, capture_output=True, text=True,
                          timeout=600, env={**webbuild.npm_environment(), "CI": "true"})


def test_vitest_passes(node_modules: None) -> None:
    done = npm("test", "-w", "clients/web")
    output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert done.returncode == 0, output[-4000:]
    tests = re.search(r"Tests\s+(\d+) passed", output)
    assert tests is not None and int(tests.group(1)) >= 10, output[-2000:]
    assert "failed" not in output.split("Test Files")[-1]


def test_the_package_type_checks(node_modules: None) -> None:
    done = npm("run", "typecheck", "-w", "clients/web")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
