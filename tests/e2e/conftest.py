"""End-to-end tests reuse the CLI suite's real server process and in-process CLI runner."""

from __future__ import annotations

from tests.cli.conftest import cli, server

__all__ = ["cli", "server"]
