"""Fork safety, asyncio waiting and the light import footprint."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from flagstaff.sdk import Client
from tests.sdk.conftest import FAST, eventually
from tests.sdk.fakeserver import KEY, FakeServer, bool_flag


def test_forked_child_restarts_sync_and_receives_updates(server: FakeServer) -> None:
    with Client(server.url, sdk_key=KEY, options=FAST) as client:
        assert client.wait_until_ready(timeout=5)
        assert eventually(lambda: server.open_streams == 1)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it sees, then leave without cleanup
            code = 1
            try:
                os.close(read_end)
                before = client.bool("new-checkout", {}, default=False)
                os.write(write_end, f"{before},".encode())  # read before the parent changes it
                changed = eventually(lambda: client.bool("new-checkout", {}, default=True) is False,
                                     timeout=10)
                os.write(write_end, f"{changed},{client.instance}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        # The child opens its own stream (the parent's connection is not shared by it).
        assert eventually(lambda: server.open_streams == 2, timeout=10)
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            first = pipe.read(5)  # "True," once the child has read the flag's old value
            server.set_flag(bool_flag("new-checkout", False, version=2))
            report = (first + pipe.read()).decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        before, changed, child_instance = report.split(",")
        assert (before, changed) == ("True", "True")
        assert eventually(lambda: client.bool("new-checkout", {}, default=True) is False)
        # The child is a fleet instance of its own, and reported as one.
        assert child_instance not in (client.instance, "None")
        assert eventually(lambda: any(r["instance"] == child_instance for r in server.reports))


def test_wait_until_ready_async(server: FakeServer, unused_port: int) -> None:
    async def main() -> tuple[bool, bool, bool]:
        with Client(server.url, sdk_key=KEY, options=FAST) as client:
            ready = await client.wait_until_ready_async(timeout=5)
            value = client.bool("new-checkout", {"key": "u"})
        with Client(f"http://127.0.0.1:{unused_port}", sdk_key=KEY, options=FAST) as down:
            timed_out = await down.wait_until_ready_async(timeout=0.1)
        return ready, value, timed_out

    assert asyncio.run(main()) == (True, True, False)


def test_importing_the_sdk_does_not_load_server_dependencies() -> None:
    code = (
        "import sys, flagstaff.sdk, flagstaff.openfeature; "
        "from flagstaff import Client; "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'scipy', 'starlette', 'uvicorn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
