"""Keeps token secrets out of error answers.

Error messages and details sometimes quote what the caller sent (``invalid key 'fsm_...'``).
If that was a secret pasted into the wrong field, echoing it back would put it into client logs,
proxies and screenshots, so anything shaped like a Flagstaff secret is masked first.
"""

from __future__ import annotations

import re
from typing import Any

# fsm_ / fss_ / fsc_ + urlsafe base64 (real secrets carry 43 characters after the prefix).
SECRET_RE = re.compile(r"fs[msc]_[A-Za-z0-9_-]{16,}")


def redact(value: Any) -> Any:
    """``value`` with every secret-shaped substring replaced, recursively through JSON."""
    if isinstance(value, str):
        return SECRET_RE.sub(lambda m: m.group(0)[:4] + "[redacted]", value)
    if isinstance(value, dict):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
