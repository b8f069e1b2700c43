"""Flagstaff: feature flags with a pure evaluation engine, a management server and a Python SDK.

The top-level package re-exports the SDK client lazily so that ``import flagstaff`` stays cheap
and never pulls server-only dependencies.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Client", "__version__", "secure_mode_hash"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from flagstaff.sdk import Client

        return Client
    if name == "secure_mode_hash":
        from flagstaff.secure_mode import secure_mode_hash

        return secure_mode_hash
    raise AttributeError(name)
