"""The Flagstaff HTTP server (FastAPI).

``flagstaff.server.app.create_app`` builds the application; ``flagstaff.server.main.run`` serves
it with uvicorn.  Handlers hold no queries: they authenticate, parse, call the store or the
snapshot cache, and let ``flagstaff.server.errors`` turn domain errors into the one JSON error
shape.  This package is imported only with the ``server`` extra installed.
"""

from __future__ import annotations
