"""Where the CLI finds its server and token: options, environment variables, a profile file.

Precedence is option > ``FLAGSTAFF_URL``/``FLAGSTAFF_TOKEN`` > profile.  The profile file is
``$FLAGSTAFF_CONFIG`` or ``~/.config/flagstaff/config.toml``::

    default_profile = "local"

    [profiles.local]
    url = "http://127.0.0.1:8400"
    token = "fsm_..."

The profile is chosen with ``--profile``, ``FLAGSTAFF_PROFILE``, ``default_profile`` or, failing
those, a profile named ``default`` if there is one.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flagstaff.cli.errors import CliError, ExitCode

DEFAULT_URL = "http://127.0.0.1:8400"


@dataclass(frozen=True)
class Connection:
    url: str
    token: str | None


def config_path() -> Path:
    configured = os.environ.get("FLAGSTAFF_CONFIG")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "flagstaff" / "config.toml"


def resolve(*, url: str | None, token: str | None, profile: str | None) -> Connection:
    """Combine options, environment and profile file into a URL and an optional token."""
    chosen = _profile(profile or os.environ.get("FLAGSTAFF_PROFILE"))
    final_url = url or os.environ.get("FLAGSTAFF_URL") or chosen.get("url") or DEFAULT_URL
    final_token = token or os.environ.get("FLAGSTAFF_TOKEN") or chosen.get("token")
    return Connection(
        url=str(final_url).rstrip("/"), token=str(final_token) if final_token else None
    )


def _profile(name: str | None) -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        if name:
            raise CliError(
                f"profile {name!r} asked for, but there is no config file at {path}",
                ExitCode.INVALID,
            )
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read the config file {path}: {exc}", ExitCode.INVALID) from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise CliError(f"{path}: [profiles] must be a table of profiles", ExitCode.INVALID)
    wanted = name or data.get("default_profile")
    if wanted is None:
        wanted = "default" if "default" in profiles else None
    if wanted is None:
        return {}
    found = profiles.get(wanted)
    if not isinstance(found, dict):
        known = ", ".join(sorted(profiles)) or "none"
        raise CliError(f"{path}: no profile {wanted!r} (profiles: {known})", ExitCode.INVALID)
    return found
