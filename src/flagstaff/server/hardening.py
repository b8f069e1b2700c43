"""Wires the reliability and security layer into the app (called once by ``create_app``).

``install`` must run before ``create_app`` adds the body-size limit, so that the limit wraps
everything added here (the request-limits middleware reads bodies the size limit has already
bounded).  Outermost first, the layers added here are: the authentication-failure rate limit
(``ratelimit``), the per-key stream cap and the request limits (``limits``).  It also completes
the OpenAPI document (``openapi_doc``).  See docs/reliability.md.
"""

from __future__ import annotations

from fastapi import FastAPI

from flagstaff.server import openapi_doc
from flagstaff.server.limits import (
    RequestLimitsMiddleware,
    StreamConnectionLimiter,
    StreamLimitMiddleware,
    request_limits,
)
from flagstaff.server.ratelimit import AuthFailureLimiter, AuthRateLimitMiddleware
from flagstaff.server.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    limits = request_limits(settings)
    streams = StreamConnectionLimiter(settings.max_streams_per_key)
    failures = AuthFailureLimiter(
        limit=settings.max_auth_failures, window_seconds=settings.auth_failure_window_seconds
    )
    app.state.request_limits = limits
    app.state.stream_limiter = streams
    app.state.auth_failure_limiter = failures
    # add_middleware wraps: the last added runs first.
    app.add_middleware(RequestLimitsMiddleware, limits=limits)
    app.add_middleware(StreamLimitMiddleware, limiter=streams)
    app.add_middleware(AuthRateLimitMiddleware, limiter=failures)
    openapi_doc.install(app)
