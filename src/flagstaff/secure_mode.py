"""Secure mode: a browser may only ask about the context key its own back end signed.

When an environment is in secure mode, requests made with a client-side key must carry, next to
the context's targeting key, ``secureModeHash``: the hex HMAC-SHA256 of the targeting key (its
UTF-8 bytes) under the environment's secure-mode secret.  The back end computes it (here, or
with any HMAC library) and hands it to the page with the rest of the user's session; a user who
edits the key in the browser cannot produce a matching hash, so cannot see another user's
targeting.  Shared by the SDK (which produces hashes) and the server (which checks them).
"""

from __future__ import annotations

import hashlib
import hmac

# The context attribute that carries the hash; removed before evaluation.
HASH_ATTRIBUTE = "secureModeHash"


def secure_mode_hash(secret: str, targeting_key: str) -> str:
    """The hash a browser sends for ``targeting_key`` (64 lower-case hex digits).

    ``secret`` is the environment's secure-mode secret (``fsh_...``: ``flagstaff envs
    secure-mode-secret production``); keep it on the server, like an SDK key.
    """
    return hmac.new(secret.encode(), targeting_key.encode(), hashlib.sha256).hexdigest()


def verify(secret: str, targeting_key: str, given: object) -> bool:
    """Whether ``given`` is the hash of ``targeting_key`` (constant-time comparison)."""
    if not isinstance(given, str) or len(given) != 64:
        return False
    return hmac.compare_digest(secure_mode_hash(secret, targeting_key), given.lower())
