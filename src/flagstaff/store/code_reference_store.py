"""The ``Store`` methods of code references (a mixin of :class:`flagstaff.store.Store`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.store import code_references
from flagstaff.store.code_references import FlagReferences, RepositoryReport
from flagstaff.store.db import read_tx, write_tx


class CodeReferenceStoreMixin:
    engine: sa.Engine

    def report_code_references(
        self, *, repository: str, references: list[dict[str, Any]], actor: str,
        revision: str | None = None, now: datetime | None = None,
    ) -> RepositoryReport:
        """Replace ``repository``'s references (``key``, ``file``, ``line``, ``kind``) with
        these, stamped with the time of the scan."""
        name, rows, revision = code_references.check_report(
            repository=repository, references=references, revision=revision
        )
        with write_tx(self.engine) as conn:
            return code_references.replace(
                conn, repository=name, rows=rows, revision=revision, actor=actor,
                at=now or datetime.now(UTC),
            )

    def code_repositories(self) -> list[RepositoryReport]:
        with read_tx(self.engine) as conn:
            return code_references.repositories(conn)

    def forget_code_repository(self, *, repository: str) -> RepositoryReport:
        with write_tx(self.engine) as conn:
            return code_references.forget(conn, repository=repository)

    def flag_code_references(self, *, key: str, shown: int = 50) -> list[FlagReferences]:
        """Where code names ``key``, per repository, as the last scans reported."""
        with read_tx(self.engine, consistent=True) as conn:
            return code_references.of_flag(conn, key=key, shown=shown)
