"""The web console at ``/ui``: server-rendered pages with light JavaScript, no build step.

``router`` holds every console route (pages, the console's JSON API, sign-in, static files and
the live-update stream); ``create_app`` includes it.  Sessions, CSRF and the security headers
are in :mod:`~flagstaff.server.console.session`; see ``docs/console.md``.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from flagstaff.server.console import api, experiments, fleet, governance, pages, signin

router = APIRouter(prefix="/ui", include_in_schema=False)
router.include_router(signin.router)
router.include_router(api.router)
router.include_router(experiments.router)
router.include_router(fleet.router)
router.include_router(governance.router)
router.include_router(pages.router)


@router.get("")
def console_home() -> RedirectResponse:
    return RedirectResponse("/ui/flags", status_code=307)

__all__ = ["router"]
