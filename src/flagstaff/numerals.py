"""Numbers read from protocol text (headers, query strings, path segments, ids): ASCII only.

``str.isdigit()`` is true for ``"²"`` and ``"①"``, which ``int()`` then refuses (an unhandled
``ValueError``: a 500), and for Arabic-Indic or full-width digits, which ``int()`` and
``float()`` accept (a number nobody sent in ASCII).  Regular expressions' ``\\d`` has the same
Unicode reach.  Every layer that reads a number from text asks this module, which accepts the
ASCII digits ``0``-``9`` only and answers ``None`` for anything else, so the caller turns a bad
value into its own documented error.  Imports nothing of ours (every layer may use it).
"""

from __future__ import annotations

import math
import re

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def ascii_int(text: str | bytes, *, max_digits: int = 19) -> int | None:
    """``text`` as a non-negative integer when it is 1 to ``max_digits`` ASCII digits, else None.

    No sign, no spaces, no underscores: a header or query value is either an id or not.
    """
    if isinstance(text, bytes):
        if not 0 < len(text) <= max_digits or not text.isdigit():  # bytes: ASCII by definition
            return None
        return int(text)
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def ascii_decimal(text: str, *, max_length: int = 32) -> float | None:
    """``text`` as a finite non-negative number (``12`` or ``1.5``) in ASCII digits, else None."""
    if len(text) > max_length or _DECIMAL.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None
