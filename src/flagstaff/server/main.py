"""Serving: ``run(settings)`` starts uvicorn on the configured host and port."""

from __future__ import annotations

import uvicorn

from flagstaff.server.app import create_app
from flagstaff.server.logging_setup import configure_logging
from flagstaff.server.settings import Settings


def run(settings: Settings | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down gracefully)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    # log_config=None keeps our JSON handlers instead of uvicorn's default text logging.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
