"""A serving process freezes its heap once startup is done (``main.settle_after_startup``), and
serves as before."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.main import settle_after_startup
from flagstaff.server.settings import Settings
from tests.server.conftest import ADMIN_SECRET, auth


def test_what_startup_built_is_frozen_and_the_app_serves(database_url: str) -> None:
    gc.unfreeze()
    app = settle_after_startup(create_app(Settings(
        database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET)))
    assert gc.get_freeze_count() == 0  # building the app froze nothing: startup does
    try:
        with TestClient(app) as client:
            assert gc.get_freeze_count() > 10_000  # modules, routes, models, caches
            answer = client.get("/flags", headers=auth(ADMIN_SECRET))
            assert answer.status_code == 200, answer.text
    finally:
        gc.unfreeze()  # the rest of this test process collects as before
