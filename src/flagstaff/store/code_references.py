"""Code references: where each repository's code names a flag, as its last scan reported.

``flagstaff scan --report`` sends every reference it found (flag key, file, line) for one
repository; the report replaces that repository's previous one, so a reference removed from
the code disappears with the next scan.  A flag's references (per repository, with the time of
its scan) feed the flag page and the archive warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Invalid, NotFound
from flagstaff.store.records import iso
from flagstaff.store.schema import code_references, code_repositories

MAX_REFERENCES = 20_000  # per report (a 1 MiB request body holds about 10,000 anyway)
KINDS = ("sdk-call", "literal")


@dataclass(frozen=True)
class RepositoryReport:
    repository: str
    scanned_at: datetime
    actor: str
    revision: str | None
    reference_count: int
    flag_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository, "scanned_at": iso(self.scanned_at),
            "actor": self.actor, "revision": self.revision,
            "reference_count": self.reference_count, "flag_count": self.flag_count,
        }


@dataclass
class FlagReferences:
    """One flag's references in one repository (at most ``shown`` of them listed)."""

    repository: str
    scanned_at: datetime
    revision: str | None
    count: int
    references: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository, "scanned_at": iso(self.scanned_at),
            "revision": self.revision, "count": self.count, "references": self.references,
        }


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise Invalid(f"{name} must be 1 to {limit} characters", details={"field": name})
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Invalid(f"{name} must not contain control characters", details={"field": name})
    return value


def check_report(
    *, repository: Any, references: Any, revision: Any
) -> tuple[str, list[dict[str, Any]], str | None]:
    """The report's parts validated (a bad one is a 400 naming the field)."""
    repository = _text(repository, "repository", 200)
    if revision is not None:
        revision = _text(revision, "revision", 100)
    if not isinstance(references, list) or len(references) > MAX_REFERENCES:
        raise Invalid(
            f"references must be a list of at most {MAX_REFERENCES:,}", details={"field": "references"}
        )
    rows = []
    for index, ref in enumerate(references):
        where = f"references[{index}]"
        if not isinstance(ref, Mapping):
            raise Invalid(f"{where} must be an object", details={"field": where})
        line = ref.get("line")
        if isinstance(line, bool) or not isinstance(line, int) or line < 1:
            raise Invalid(f"{where}.line must be a positive integer", details={"field": f"{where}.line"})
        kind = ref.get("kind", "literal")
        if kind not in KINDS:
            raise Invalid(f"{where}.kind must be sdk-call or literal", details={"field": f"{where}.kind"})
        rows.append({
            "repository": repository, "flag_key": _text(ref.get("key"), f"{where}.key", 128),
            "file": _text(ref.get("file"), f"{where}.file", 1000), "line": line, "kind": kind,
        })
    return repository, rows, revision


def replace(
    conn: sa.Connection, *, repository: str, rows: list[dict[str, Any]], revision: str | None,
    actor: str, at: datetime,
) -> RepositoryReport:
    conn.execute(code_references.delete().where(code_references.c.repository == repository))
    conn.execute(code_repositories.delete().where(code_repositories.c.repository == repository))
    report = RepositoryReport(
        repository=repository, scanned_at=at, actor=actor, revision=revision,
        reference_count=len(rows), flag_count=len({r["flag_key"] for r in rows}),
    )
    conn.execute(code_repositories.insert().values(
        repository=repository, scanned_at=at, actor=actor, revision=revision,
        reference_count=report.reference_count, flag_count=report.flag_count,
    ))
    if rows:
        conn.execute(code_references.insert(), rows)
    return report


def _report(row: sa.Row[Any]) -> RepositoryReport:
    return RepositoryReport(
        repository=row.repository, scanned_at=row.scanned_at, actor=row.actor,
        revision=row.revision, reference_count=int(row.reference_count),
        flag_count=int(row.flag_count),
    )


def repositories(conn: sa.Connection) -> list[RepositoryReport]:
    rows = conn.execute(sa.select(code_repositories).order_by(code_repositories.c.repository))
    return [_report(row) for row in rows]


def forget(conn: sa.Connection, *, repository: str) -> RepositoryReport:
    row = conn.execute(
        sa.select(code_repositories).where(code_repositories.c.repository == repository)
    ).first()
    if row is None:
        raise NotFound(f"no code references reported for repository {repository!r}")
    conn.execute(code_references.delete().where(code_references.c.repository == repository))
    conn.execute(code_repositories.delete().where(code_repositories.c.repository == repository))
    return _report(row)


def of_flag(conn: sa.Connection, *, key: str, shown: int) -> list[FlagReferences]:
    """``key``'s references per repository (repository order), up to ``shown`` each listed
    (by file, then line) with the full count."""
    counts = conn.execute(
        sa.select(code_references.c.repository, sa.func.count().label("n"))
        .where(code_references.c.flag_key == key)
        .group_by(code_references.c.repository)
    ).all()
    if not counts:
        return []
    reports = {
        row.repository: row for row in conn.execute(
            sa.select(code_repositories).where(
                code_repositories.c.repository.in_([c.repository for c in counts])
            )
        )
    }
    found = []
    for repository, n in sorted((c.repository, int(c.n)) for c in counts):
        refs = conn.execute(
            sa.select(code_references.c.file, code_references.c.line, code_references.c.kind)
            .where(code_references.c.flag_key == key, code_references.c.repository == repository)
            .order_by(code_references.c.file, code_references.c.line, code_references.c.id)
            .limit(shown)
        )
        report = reports[repository]
        found.append(FlagReferences(
            repository=repository, scanned_at=report.scanned_at, revision=report.revision, count=n,
            references=[{"file": r.file, "line": int(r.line), "kind": r.kind} for r in refs],
        ))
    return found
