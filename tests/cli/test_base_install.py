"""The ``flagstaff`` script of a base install (no Typer or Rich) says what to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Make the CLI's libraries unimportable, as in an environment with only the base install.
WITHOUT = (
    "import sys\n"
    "for name in {names}: sys.modules[name] = None\n"
    "sys.argv = ['flagstaff', 'flags', 'list']\n"
    "from flagstaff.command import main\n"
    "main()\n"
)


@pytest.mark.parametrize("missing", [["typer"], ["rich"], ["typer", "rich", "click"]])
def test_base_install_says_to_install_the_cli_extra(missing: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT.format(names=missing)], capture_output=True, text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "the command line is not installed" in done.stderr
    assert "pip install 'flagstaff[cli]'" in done.stderr


def test_other_import_errors_are_not_disguised() -> None:
    code = WITHOUT.format(names=["httpx"])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" in done.stderr and "httpx" in done.stderr
