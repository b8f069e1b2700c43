"""First evaluations for a page the back end renders, so its first paint needs no request.

A Python back end that serves a page using OpenFeature's web SDK (with ``@flagstaff/web``)
evaluates the signed-in user's client-side flags as it renders, and embeds the answer::

    bootstrap = browser_bootstrap(client, {"targetingKey": user.id}, secure_mode_secret=secret)
    html = template.replace("<!--flagstaff-bootstrap-->", bootstrap_script(bootstrap))

The page's ``readBootstrap()`` hands it to the provider, which starts from it (the stock OFREP
provider's local-cache-first start) and refreshes from the network in the background; the
refresh costs a 304 when nothing changed.  The flags are exactly those, and in the shapes, that
the server's bulk OFREP answer gives a client-side key (:mod:`flagstaff.ofrep`): flags marked
``client_side`` only, without rule ids or anything else that describes targeting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flagstaff import ofrep
from flagstaff.secure_mode import HASH_ATTRIBUTE, secure_mode_hash

if TYPE_CHECKING:
    from flagstaff.sdk.client import Client

SCRIPT_ID = "flagstaff-bootstrap"


def browser_bootstrap(
    client: Client, context: Mapping[str, Any], *, secure_mode_secret: str | None = None,
) -> dict[str, Any]:
    """``{"context": ..., "flags": [...]}`` for the page of the user ``context`` describes.

    ``context`` is the OpenFeature context the page will use (``targetingKey`` and attributes).
    With the environment's ``secure_mode_secret`` the context handed over carries the user's
    ``secureModeHash`` as well, which the page then sends with every request.
    """
    clean = {k: v for k, v in context.items() if k != HASH_ATTRIBUTE}
    flags = [ofrep.evaluation(key, detail, client=True)
             for key, detail in sorted(client.client_side_details(clean).items())]
    handed: dict[str, Any] = dict(clean)
    if secure_mode_secret is not None:
        targeting_key = clean.get("targetingKey")
        if not isinstance(targeting_key, str) or not targeting_key:
            raise ValueError("secure mode needs a string targetingKey in the context")
        handed[HASH_ATTRIBUTE] = secure_mode_hash(secure_mode_secret, targeting_key)
    return {"context": handed, "flags": flags}


def bootstrap_script(bootstrap: Mapping[str, Any], *, script_id: str = SCRIPT_ID) -> str:
    """The ``<script type="application/json">`` element that carries ``bootstrap`` in a page.

    ``<``, ``>`` and ``&`` are written as JSON escapes, so no value (a flag's string, a user's
    attribute) can close the element or open another: the text stays inert JSON.
    """
    text = json.dumps(bootstrap, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f'<script type="application/json" id="{script_id}">{text}</script>'
