"""Fleet view: how long until the server reports that a change reached every SDK instance.

One server process (SQLite) and N real SDK clients (``flagstaff.Client``, streaming, default
reporting: a report after a random delay of up to ``report_jitter`` once a change is applied),
spread over several client processes so that one process's GIL is not what is measured.  For
each of a few kills/un-kills of a flag: the time from the write's answer to ``GET /fleet``
showing 100 % of the environment's SDK instances at the write's version (polled every 50 ms),
and the time until the first instance reported it.  The documented bound is the jitter (1 s)
plus the server's write interval (``FLAGSTAFF_FLEET_FLUSH_INTERVAL_SECONDS``, 1 s) plus the
stream's propagation.

    .venv/bin/python benchmarks/bench_fleet.py [--instances 1000] [--processes 4] [--rounds 5]

Results go to ``docs/benchmarks.md`` ("fleet").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section
from bench_stream import Server

ENV = "production"
FLAG = "fleet-bench"

# A client process: N real SDK clients, "ready" once all have their first snapshot, then
# running until its stdin closes.
_CLIENTS = """
import sys
from flagstaff import Client
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
clients = [Client(url, sdk_key=key) for _ in range(n)]
ready = sum(c.wait_until_ready(timeout=120) for c in clients)
print("ready", ready, flush=True)
sys.stdin.read()
for c in clients:
    c.close(timeout=1)
"""


def fleet_sdks(server: Server) -> tuple[int, dict[str, float]]:
    view = server.client.get("/fleet", params={"environment": ENV}).json()
    environments = view.get("environments") or []
    sdks = environments[0]["sdks"] if environments else {}
    return int(view.get("latest_version") or 0), sdks


def wait_for(predicate: object, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def run(instances: int, processes: int, rounds: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(f"sqlite:///{tmp}/fleet.db", Path(tmp) / "server.log")
        children: list[subprocess.Popen[str]] = []
        try:
            server.client.post("/flags", json={
                "key": FLAG, "type": "boolean",
                "environments": {ENV: {"enabled": True}}}).raise_for_status()
            key = server.client.post("/tokens", json={
                "name": "fleet-bench", "kind": "sdk-server", "environment": ENV}).json()["secret"]
            share = [instances // processes + (i < instances % processes) for i in range(processes)]
            started = time.monotonic()
            for n in share:
                children.append(subprocess.Popen(
                    [sys.executable, "-c", _CLIENTS, server.url, key, str(n)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            ready = 0
            for child in children:
                assert child.stdout is not None
                ready += int(child.stdout.readline().split()[1])
            connect_s = time.monotonic() - started
            # Everyone known and current before the first measured change.
            known = wait_for(lambda: fleet_sdks(server)[1].get("instances", 0) >= instances
                             and fleet_sdks(server)[1].get("percent") == 100, 120)
            if known is None:
                raise RuntimeError(f"the fleet view never showed {instances} current instances: "
                                   f"{fleet_sdks(server)}")
            to_full: list[float] = []
            to_first: list[float] = []
            for k in range(rounds):
                before = fleet_sdks(server)[0]
                server.client.patch(f"/flags/{FLAG}/environments/{ENV}",
                                    json={"enabled": k % 2 == 1}).raise_for_status()
                sent = time.monotonic()
                first = None
                while time.monotonic() - sent < 60:
                    latest, sdks = fleet_sdks(server)
                    if first is None and latest > before and sdks.get("current", 0) > 0:
                        first = time.monotonic() - sent
                    if latest > before and sdks.get("percent") == 100:
                        to_full.append(time.monotonic() - sent)
                        break
                    time.sleep(0.05)
                to_first.append(first if first is not None else float("nan"))
                time.sleep(1.5)
            load = os.getloadavg()
        finally:
            for child in children:
                if child.stdin is not None:
                    child.stdin.close()
            for child in children:
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
            server.stop()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f}" if values else "-"

    return [[f"{ready:,}/{instances:,}", str(processes), f"{connect_s:.1f}",
             f"{len(to_full)}/{rounds}", ms(to_first), ms(to_full),
             f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    rows = run(args.instances, args.processes, args.rounds)
    headers = ["SDK instances ready", "client processes", "connect s", "rounds at 100 %",
               "first report p50 / max ms", "100 % in the view p50 / max ms", "load average"]
    out = table(headers, rows)
    print(out)
    if not args.no_write:
        write_section("fleet", (
            "### Fleet view: time until `GET /fleet` shows a change at 100 %\n\n"
            f"One server process (SQLite) and real SDK clients (`flagstaff.Client`, streaming, "
            f"default reporting) in {args.processes} client processes on the same machine; "
            f"{args.rounds} kills and un-kills of one flag; time from the write's answer to "
            "the view showing every instance at the new version (polled every 50 ms). The "
            "documented bound: `report_jitter` (1 s) + the server's fleet write interval (1 s) "
            "+ the stream's propagation. The clients' threads (three per client) share the two "
            "cores with the server, so on a small machine these times include the clients' own "
            "scheduling delays: compare with the load average.\n\n" + out))


if __name__ == "__main__":
    main()
