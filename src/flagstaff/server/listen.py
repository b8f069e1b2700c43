"""Binding the listening socket before anything else starts (the server's and the relay's)."""

from __future__ import annotations

import socket


class CannotListen(Exception):
    """The configured address cannot be bound; nothing was started or written."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (uvicorn listens on it), or :class:`CannotListen`."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise CannotListen(f"cannot listen on {host}:{port}: {exc}") from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as exc:
        sock.close()
        raise CannotListen(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Nothing was started and "
            "the database was not touched (no admin token was created); free the port or pass "
            "--port, then start again."
        ) from None
    sock.set_inheritable(True)
    return sock
