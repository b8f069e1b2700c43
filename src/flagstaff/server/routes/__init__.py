"""Route modules, one per resource; each exposes ``router``."""

from __future__ import annotations
