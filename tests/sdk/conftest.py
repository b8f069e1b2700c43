from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from flagstaff.sdk import SyncOptions
from tests.sdk.fakeserver import FakeServer, bool_flag

FAST = SyncOptions(
    backoff_base=0.02, backoff_cap=0.1, healthy_after=1.0, poll_after=30.0, poll_interval=30.0,
    stale_after=60.0, connect_timeout=2.0, read_timeout=5.0, cache_write_interval=0.05,
)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer([bool_flag("new-checkout", True)]) as fake:
        yield fake


def sdk_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("flagstaff-")]


@pytest.fixture(autouse=True)
def no_leftover_sdk_threads() -> Iterator[None]:
    yield
    assert eventually(lambda: not sdk_threads()), sdk_threads()


def eventually(check: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return bool(check())
