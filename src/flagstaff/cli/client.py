"""A small HTTP client for the management API that turns every failure into one clear message.

The server answers every error with ``{"error": {"code", "message", "details"}}``; each status
gets a message that says what happened and what to do, and an exit code: problems with what
the user asked for (400, 404, 409, 412, 413) exit 1, problems reaching or being accepted by the
server (network, 401, 403, 429, 5xx) exit 2.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from flagstaff.cli.config import Connection
from flagstaff.cli.errors import CliError, ExitCode

# A server that is down refuses at once; one that never accepts (a wrong host, a firewall)
# should fail in seconds, not after the read timeout.  A server that accepted but is slow to
# answer gets FLAGSTAFF_TIMEOUT seconds (default 15), with a sign of life after WAIT_NOTICE.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 15.0
WAIT_NOTICE = 1.0
PAGE = 500


def read_timeout() -> float:
    raw = os.environ.get("FLAGSTAFF_TIMEOUT")
    if not raw:
        return READ_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise CliError(f"FLAGSTAFF_TIMEOUT={raw!r}: expected a number of seconds above 0")
    return value


def path(*parts: str) -> str:
    """Join URL path segments, escaping each (keys may hold dots, never slashes)."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


class ApiClient:
    def __init__(
        self,
        connection: Connection,
        *,
        transport: httpx.BaseTransport | None = None,
        progress: TextIO | None = None,
    ) -> None:
        self.url = connection.url
        self.token = connection.token
        self.timeout = read_timeout()
        self.progress = progress
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT, self.timeout)),
            transport=transport,
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
        options: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request; ``options`` maps a body or query field to the CLI option that sets it,
        so an error about that field names the option the user can add."""
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else None
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            with self._waiting(method, url):
                response = self._http.request(
                    method, url, json=json, params=clean, headers=headers
                )
        except httpx.ConnectTimeout:
            raise CliError(
                f"cannot reach server at {self.url}: no connection within "
                f"{min(CONNECT_TIMEOUT, self.timeout):g} s. Is the host right? Check --url or "
                "FLAGSTAFF_URL.",
                ExitCode.SERVER,
            ) from None
        except httpx.TimeoutException as exc:
            raise CliError(
                f"the server at {self.url} accepted the connection but did not answer within "
                f"{self.timeout:g} s ({exc.__class__.__name__}); it may be overloaded or stuck. "
                "Retry, or wait longer with FLAGSTAFF_TIMEOUT=60.",
                ExitCode.SERVER,
            ) from None
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach server at {self.url} ({exc.__class__.__name__}: {exc or 'no answer'}). "
                "Is it running? Check --url or FLAGSTAFF_URL.",
                ExitCode.SERVER,
            ) from None
        if response.status_code == 401 and not self.token:
            raise CliError(
                f"the server at {self.url} wants a token: pass --token, set FLAGSTAFF_TOKEN or "
                "add a token to a profile (flagstaff --help explains the config file)",
                ExitCode.INVALID,
            )
        if response.status_code >= 400:
            raise error_for(response, self.url, options or {})
        return response

    @contextmanager
    def _waiting(self, method: str, url: str) -> Iterator[None]:
        """Say that we are waiting when an answer takes longer than WAIT_NOTICE seconds."""
        if self.progress is None:
            yield
            return
        done = threading.Event()
        started = time.monotonic()
        stream = self.progress

        def notice() -> None:
            if done.wait(WAIT_NOTICE):
                return
            stream.write(
                f"waiting for {self.url} to answer {method} {url} "
                f"(gives up after {self.timeout:g} s)...\n"
            )
            stream.flush()
            while not done.wait(5.0):
                stream.write(f"still waiting ({time.monotonic() - started:.0f} s)...\n")
                stream.flush()

        thread = threading.Thread(target=notice, name="cli-waiting", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def get(self, url: str, **params: Any) -> Any:
        return self.request("GET", url, params=params).json()

    def send(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        if_match: int | str | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Any:
        response = self.request(method, url, json=body, if_match=if_match, options=options)
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


def error_for(
    response: httpx.Response, url: str, options: Mapping[str, str] | None = None
) -> CliError:
    error = _error_for(response, url, options)
    error.status = response.status_code
    return error


def _error_for(
    response: httpx.Response, url: str, options: Mapping[str, str] | None
) -> CliError:
    status = response.status_code
    code, message, details = _error_body(response)
    field = details.get("field") if isinstance(details, dict) else None
    option = (options or {}).get(str(field)) if field else None
    where = f" (add {option})" if option else f" (field {field})" if field else ""
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
