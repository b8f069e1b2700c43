"""Request-scoped access to the objects ``create_app`` puts on ``app.state``."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import Request

from flagstaff.server.settings import Settings

if TYPE_CHECKING:
    from flagstaff.server.snapshots import SnapshotCache
    from flagstaff.store import Store


def get_store(request: Request) -> Store:
    return cast("Store", request.app.state.store)


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_snapshots(request: Request) -> SnapshotCache:
    return cast("SnapshotCache", request.app.state.snapshots)
