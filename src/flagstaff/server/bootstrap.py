"""First-start duties: the initial admin token (printed once) and the demo flags.

Both are idempotent across restarts: the store creates the bootstrap admin only while no
token exists, and the demo file is loaded only into an empty flags table.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

from flagstaff.flagfile import demo_path, load_file

if TYPE_CHECKING:
    from flagstaff.server.settings import Settings
    from flagstaff.store import Store

log = logging.getLogger("flagstaff.server")
DEMO_ACTOR = "flagstaff (demo data)"


def ensure_admin_token(store: Store, settings: Settings, *, out: TextIO | None = None) -> bool:
    """Create the first admin token if the database has none; print its secret once.

    The secret goes to stdout only (never to the structured log, which may be shipped off the
    machine).  Returns whether a token was created.
    """
    secret = store.ensure_bootstrap_admin(secret=settings.bootstrap_token)
    if secret is None:
        return False
    stream = out or sys.stdout
    if settings.bootstrap_token:
        print("Flagstaff: admin token created from FLAGSTAFF_BOOTSTRAP_TOKEN.", file=stream)
    else:
        print(f"Flagstaff admin token (shown once, store it now): {secret}", file=stream)
    stream.flush()
    log.info("bootstrap admin token created")
    return True


def load_demo(store: Store) -> bool:
    """Load the bundled demo flags into an empty database; returns whether it did."""
    if store.list_flags(limit=1).items:
        return False
    demo = load_file(demo_path())
    existing = {env.key for env in store.list_environments()}
    for environment in demo.environments:
        if environment not in existing:
            store.create_environment(key=environment, name=None, actor=DEMO_ACTOR)
    for segment in demo.segments:
        store.create_segment(definition=segment, actor=DEMO_ACTOR)
    for flag in demo.flags:
        store.create_flag(definition=flag, actor=DEMO_ACTOR)
    log.info("demo flags loaded", extra={"flags": len(demo.flags)})
    return True
