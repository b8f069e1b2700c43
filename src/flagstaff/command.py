"""The ``flagstaff`` console script: the CLI, or how to install it.

The base install (engine + SDK) has no Typer or Rich, so the script's entry point lives outside
``flagstaff.cli``: it says which extra to install instead of failing with a traceback.
"""

from __future__ import annotations

import sys

_CLI_PACKAGES = frozenset({"typer", "rich", "click"})


def main() -> None:
    try:
        from flagstaff.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] not in _CLI_PACKAGES:
            raise
        sys.stderr.write(
            f"flagstaff: the command line is not installed ({exc.name} is missing).\n"
            "Install the CLI extra into this environment, from the same checkout or wheel:\n"
            "    pip install 'flagstaff[cli]'      # the command line\n"
            "    pip install 'flagstaff[server]'   # the command line and the server\n"
        )
        sys.exit(1)
    cli_main()
