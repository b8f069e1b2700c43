"""A small HTTP client for the management API that turns every failure into one clear message.

The server answers every error with ``{"error": {"code", "message", "details"}}``; each status
gets a message that says what happened and what to do, and an exit code: problems with what
the user asked for (400, 404, 409, 412, 413) exit 1, problems reaching or being accepted by the
server (network, 401, 403, 429, 5xx) exit 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from flagstaff.cli.config import Connection
from flagstaff.cli.errors import CliError, ExitCode

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
PAGE = 500


def path(*parts: str) -> str:
    """Join URL path segments, escaping each (keys may hold dots, never slashes)."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


class ApiClient:
    def __init__(
        self, connection: Connection, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = connection.url
        self.token = connection.token
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=TIMEOUT, transport=transport
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        if_match: int | str | None = None,
    ) -> httpx.Response:
        if not self.token:
            raise CliError(
                "no token: pass --token, set FLAGSTAFF_TOKEN or add a token to a profile "
                "(flagstaff --help explains the config file)",
                ExitCode.INVALID,
            )
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else None
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, url, json=json, params=clean, headers=headers)
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach server at {self.url} ({exc.__class__.__name__}: {exc or 'no answer'}). "
                "Is it running? Check --url or FLAGSTAFF_URL.",
                ExitCode.SERVER,
            ) from None
        if response.status_code >= 400:
            raise error_for(response, self.url)
        return response

    def get(self, url: str, **params: Any) -> Any:
        return self.request("GET", url, params=params).json()

    def send(
        self, method: str, url: str, body: Any = None, *, if_match: int | str | None = None
    ) -> Any:
        response = self.request(method, url, json=body, if_match=if_match)
        return response.json() if response.content else None

    def items(self, url: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a listing, following ``next_cursor`` pages."""
        cursor: str | None = None
        while True:
            page = self.get(url, limit=PAGE, cursor=cursor, **params)
            if isinstance(page, list):
                yield from page
                return
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return


def error_for(response: httpx.Response, url: str) -> CliError:
    status = response.status_code
    code, message, details = _error_body(response)
    field = details.get("field") if isinstance(details, dict) else None
    where = f" (field {field})" if field else ""
    if status == 401:
        return CliError(
            f"the token was rejected by {url} (401: {message}). Check --token or FLAGSTAFF_TOKEN; "
            "tokens are shown once when created and stop working when revoked.",
            ExitCode.SERVER,
        )
    if status == 403:
        return CliError(
            f"this token may not do that (403: {message}). Use a token with a higher role.",
            ExitCode.SERVER,
        )
    if status == 412:
        return CliError(
            f"the flag changed since you read it (412: {message}). Nothing was written; "
            "read it again and retry.",
            ExitCode.INVALID,
        )
    if status == 404:
        return CliError(f"not found: {message}", ExitCode.INVALID)
    if status in (400, 409, 413, 422):
        return CliError(f"{message}{where} [{code}]", ExitCode.INVALID)
    if status == 429:
        return CliError(
            f"rate limited by the server (429: {message}); retry later.", ExitCode.SERVER
        )
    return CliError(f"the server failed ({status} {code}: {message})", ExitCode.SERVER)


def _error_body(response: httpx.Response) -> tuple[str, str, Any]:
    try:
        error = response.json().get("error", {})
        return (
            str(error.get("code", "error")),
            str(error.get("message", "")),
            error.get("details", {}),
        )
    except (ValueError, AttributeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return "error", text, {}
