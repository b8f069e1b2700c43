"""Keeps token secrets out of error answers and out of logs.

Error messages and details sometimes quote what the caller sent (``invalid key 'fsm_...'``).
If that was a secret pasted into the wrong field, echoing it back would put it into client logs,
proxies and screenshots, so anything shaped like a Flagstaff secret is masked first.

Log lines are masked more widely (:func:`redact_text`, applied to every record by
``logging_setup``): libraries log what they were sent, e.g. the WebSocket library under uvicorn
logs every handshake header at DEBUG (``< authorization: Bearer ...``), wrong guesses included,
and a guess is often a real key with a typo, or a key of another installation.  So the values of
credential headers, bearer tokens and ``token=`` query parameters are masked whatever their
shape, as well as anything shaped like one of our secrets.
"""

from __future__ import annotations

import re
from typing import Any

# fsm_ / fss_ / fsc_ (tokens), fsh_ (secure-mode secrets), fst_ (trigger URLs) and whsec_
# (webhook signing secrets) + urlsafe base64 (real secrets carry 43 characters after the prefix).
SECRET_RE = re.compile(r"(?:fs[mscht]|whsec)_[A-Za-z0-9_-]{16,}")
MASK = "[redacted]"
# A credential header's value in the shapes libraries log it: ``authorization: Bearer x``,
# ``(b'authorization', b'Bearer x')``, ``{'cookie': 'x'}``: up to the end of the quoted value
# or of the line.
_CREDENTIAL_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization|\b(?:set-)?cookie|\bx-api-key)(['\"]?\s*[:=,]\s*(?:(?-i:b)?['\"])?)"
    r"[^'\"\r\n]+"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)[^\s'\",;]+")
_TOKEN_PARAM = re.compile(r"(?i)([?&](?:token|access_token|api_key|key)=)[^&\s'\"#]+")


def redact(value: Any) -> Any:
    """``value`` with every secret-shaped substring replaced, recursively through JSON."""
    if isinstance(value, str):
        return SECRET_RE.sub(lambda m: m.group(0)[:4] + "[redacted]", value)
    if isinstance(value, dict):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_text(text: str) -> str:
    """``text`` (a log line) with credential values and secret-shaped substrings masked."""
    text = _CREDENTIAL_HEADER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _TOKEN_PARAM.sub(lambda m: m.group(1) + MASK, text)
    return SECRET_RE.sub(lambda m: m.group(0)[:4] + MASK, text)
