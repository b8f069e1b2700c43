"""Code references: ``flagstaff scan --report`` posts where each repository's code names flags;
a flag's references read back per repository (the flag page, the archive warnings).

A report replaces the repository's previous one, so what is stored is always the last scan.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from flagstaff.server.auth import Editor, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.models import (
    CodeReportIn,
    CodeReportOut,
    CodeRepositoriesOut,
    FlagCodeReferencesOut,
)
from flagstaff.store import Store

router = APIRouter(tags=["code references"])

StoreDep = Annotated[Store, Depends(get_store)]
# A flag's references listed per repository (the count covers all of them).
SHOWN = 50


@router.post(
    "/code-references", summary="Report a repository's scan (replaces its previous report)",
    response_model=CodeReportOut, responses=error_responses(400, 401, 403, 413),
)
def report(body: CodeReportIn, principal: Editor, store: StoreDep) -> dict[str, Any]:
    stored = store.report_code_references(
        repository=body.repository, revision=body.revision, actor=principal.actor,
        references=[r.model_dump() for r in body.references],
    )
    return stored.to_dict()


@router.get(
    "/code-references", summary="Repositories with a reported scan",
    response_model=CodeRepositoriesOut, responses=error_responses(401, 403),
)
def repositories(_: Viewer, store: StoreDep) -> dict[str, Any]:
    return {"items": [r.to_dict() for r in store.code_repositories()]}


@router.delete(
    "/code-references", summary="Forget a repository's references",
    response_model=CodeReportOut, responses=error_responses(400, 401, 403, 404),
)
def forget(
    _: Editor, store: StoreDep,
    repository: Annotated[str, Query(min_length=1, max_length=200)],
) -> dict[str, Any]:
    return store.forget_code_repository(repository=repository).to_dict()


@router.get(
    "/flags/{key}/code-references", summary="Where code names a flag, per repository",
    response_model=FlagCodeReferencesOut, responses=error_responses(401, 403, 404),
)
def flag_references(
    key: Annotated[str, Path(max_length=128)], _: Viewer, store: StoreDep
) -> dict[str, Any]:
    store.get_flag(key=key)  # 404 for a flag that does not exist
    return flag_references_body(store, key)


def flag_references_body(store: Store, key: str) -> dict[str, Any]:
    found = store.flag_code_references(key=key, shown=SHOWN)
    return {
        "key": key, "total": sum(r.count for r in found),
        "repositories": [r.to_dict() for r in found],
    }
