"""``python -m flagstaff.server [--host H] [--port P] [--database-url URL] [--workers N]
[--insecure-dev]``.

Flags override ``FLAGSTAFF_*`` environment variables, which override the defaults.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flagstaff.server.main import CannotListen, run
from flagstaff.server.settings import Settings


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m flagstaff.server", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--database-url")
    parser.add_argument("--workers", type=int, help="server processes (default: one per core)")
    parser.add_argument(
        "--insecure-dev", action="store_true", default=None,
        help="open write access without tokens (binds to 127.0.0.1 only)",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    return Settings(**overrides)


if __name__ == "__main__":
    try:
        run(parse_args())
    except CannotListen as exc:
        sys.exit(f"flagstaff: {exc}")
