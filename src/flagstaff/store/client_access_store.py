"""The :class:`Store` methods for browser access: the installation identity and each
environment's allowed origins and secure mode (see :mod:`flagstaff.store.client_access`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flagstaff.store import client_access, installation
from flagstaff.store.db import read_tx, write_tx
from flagstaff.store.records import ClientAccessRecord, InstallationRecord


class ClientAccessStoreMixin:
    engine: sa.Engine

    def installation(self) -> InstallationRecord:
        with write_tx(self.engine) as conn:
            return installation.get(conn)

    def get_client_access(self, *, environment: str) -> ClientAccessRecord:
        with read_tx(self.engine) as conn:
            return client_access.get(conn, environment=environment)

    def list_client_access(self) -> list[ClientAccessRecord]:
        with read_tx(self.engine) as conn:
            return client_access.list_all(conn)

    def update_client_access(
        self, *, environment: str, allowed_origins: Any = None, secure_mode: Any = None,
        actor: str,
    ) -> ClientAccessRecord:
        with write_tx(self.engine) as conn:
            return client_access.update(
                conn, environment=environment, allowed_origins=allowed_origins,
                secure_mode=secure_mode, actor=actor,
            )

    def secure_mode_secret(self, *, environment: str, rotate: bool = False, actor: str) -> str:
        with write_tx(self.engine) as conn:
            return client_access.secret(conn, environment=environment, rotate=rotate, actor=actor)
