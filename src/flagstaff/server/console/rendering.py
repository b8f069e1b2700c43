"""Template rendering for the console: the Jinja2 environment, shared page context, filters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from starlette.templating import Jinja2Templates

from flagstaff.engine.reassignment import describe
from flagstaff.server.console.session import can

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES))


def compact(value: Any) -> str:
    """A value as short, readable JSON for diffs and summaries."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)


def when(value: Any) -> str:
    """An ISO-8601 UTC timestamp shortened to minutes for tables."""
    text = str(value or "")
    return text[:16].replace("T", " ") + (" UTC" if text else "")


templates.env.filters["compact"] = compact
templates.env.filters["when"] = when
templates.env.filters["reassigned"] = describe
# Pages embed definitions with ``tojson``: keep their key order (Jinja sorts by default), since
# the order of a flag's variants is how the editor lists them.
templates.env.policies["json.dumps_kwargs"] = {"sort_keys": False}


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> Response:
    """Render ``name`` with the signed-in principal, its CSRF token and role flags."""
    principal = getattr(request.state, "principal", None)
    base: dict[str, Any] = {
        "principal": principal,
        "csrf": getattr(request.state, "csrf", ""),
        "can_edit": principal is not None and can(principal, "editor"),
        "is_admin": principal is not None and can(principal, "admin"),
        "path": request.url.path,
    }
    base.update(context or {})
    return templates.TemplateResponse(request, name, base, status_code=status_code)
