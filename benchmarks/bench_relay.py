"""Relay benchmark: one server, relays at one and two hops, many SSE clients spread over them.

    .venv/bin/python benchmarks/bench_relay.py --clients 3000,12000 [--relays 3] [--writes 10]

Topology, all on this machine: a ``python -m flagstaff.server`` (SQLite), ``--relays`` relays
following it (one hop) and one more relay following the first relay (two hops), each the real
``flagstaff relay`` command.  The clients (raw asyncio SSE connections, ``_sse_swarm``) are
spread evenly over every relay, opened by two load-generator processes (one process may hold at
most 20,000 sockets here).  Measured per client count:

* propagation of a kill: a flag is killed (then re-enabled, alternately) through the server's
  API ``--writes`` times, one at a time; for each write, the time from sending the request until
  each client has read the ``flag_updated`` event, p50/p99/max, separately for clients one hop
  and two hops from the server (CLOCK_MONOTONIC is shared by the processes);
* each relay's RSS growth per connection, (RSS with its clients connected - RSS idle) / clients,
  idle being after one batch of 250 connections was opened and closed (user-space memory; kernel
  socket buffers are not included);
* the load average of the machine, before and after.

Then the cold start: a relay whose data directory holds a snapshot is started with its upstream
down (nothing listens there), and the time from starting the process until ``/ready`` and until
a first ``GET /sdk/flags`` is answered is measured, for the server's snapshot and for a
synthetic one of 1,000 flags.  Results go to ``docs/benchmarks.md`` (section ``relays``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section
from _sse_swarm import SseConnection, SseSwarm
from bench_stream import free_port, pct, rss_kib

FLAG = "relay-bench"
EVENT = re.compile(rb'id: (\d+)\nevent: flag_updated\ndata: \{"key":"' + FLAG.encode() + rb'"')
ROOT = Path(__file__).resolve().parent.parent
RELAY = "from flagstaff.command import main; main()"
# The relay's own log line: how long reading its saved snapshots took (relay/service.py).
READ_IN = re.compile(r"read in ([0-9.]+) ms")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> float:
    """Seconds until ``url`` answers 200 (raises if the process exits or it never does)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer 200")


class Processes:
    """The server and the relays, all stopped at the end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.started: list[subprocess.Popen[bytes]] = []

    def server(self) -> tuple[str, str, subprocess.Popen[bytes]]:
        port, token = free_port(), "fsm_" + secrets.token_urlsafe(32)
        env = {**os.environ, "FLAGSTAFF_BOOTSTRAP_TOKEN": token, "FLAGSTAFF_DEMO": "false",
               "FLAGSTAFF_LOG_LEVEL": "WARNING", "FLAGSTAFF_WORKERS": "1"}
        process = self._start([sys.executable, "-m", "flagstaff.server", "--port", str(port),
                               "--database-url", f"sqlite:///{self.work / 'flagstaff.db'}"],
                              env, "server.log")
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/ready", process)
        return url, token, process

    def relay(self, upstream: str, key: str, name: str,
              ) -> tuple[str, subprocess.Popen[bytes], float]:
        port = free_port()
        # Every simulated client uses the one key: the per-key cap (1,000 by default) would
        # refuse all but the first thousand at each relay.
        env = {**os.environ, "FLAGSTAFF_RELAY_KEYS": key, "FLAGSTAFF_LOG_LEVEL": "WARNING",
               "FLAGSTAFF_MAX_STREAMS_PER_KEY": "1000000"}
        process = self._start([sys.executable, "-c", RELAY, "relay", "--upstream", upstream,
                               "--port", str(port), "--data-dir", str(self.work / name)],
                              env, f"{name}.log")
        url = f"http://127.0.0.1:{port}"
        return url, process, wait_http(f"{url}/ready", process)

    def _start(self, command: list[str], env: dict[str, str], log: str,
               ) -> subprocess.Popen[bytes]:
        with (self.work / log).open("ab") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=self.work)
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)


# -- the load generator (a process of its own: ``--generator SPEC``) ------------------------


async def generator(spec: dict[str, Any]) -> None:
    """Hold the connections of ``spec``; for each ``round N`` line on stdin, print the arrival
    times of the N-th event per connection (by hop), as JSON."""
    expected = 0
    arrivals: dict[str, list[float]] = {}
    hop_of: dict[int, str] = {}
    counts: dict[int, int] = {}

    def on_data(connection: SseConnection, data: bytes, now: float) -> None:
        # ``data`` starts with the previous read's tail: an event is counted once, by its id.
        for match in EVENT.finditer(data):
            event_id = int(match.group(1))
            if event_id <= connection.seen:
                continue
            connection.seen = event_id
            counts[id(connection)] = count = counts.get(id(connection), 0) + 1
            if count == expected:
                arrivals.setdefault(hop_of[id(connection)], []).append(time.monotonic())

    swarms: list[SseSwarm] = []
    failed = 0
    for target in spec["targets"]:
        request = (f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                   f"{spec['key']}\r\nAccept: text/event-stream\r\n\r\n").encode()
        swarm = SseSwarm(target["port"], request, on_data)
        await swarm.open(target["count"])
        for connection in swarm.connections:
            hop_of[id(connection)] = target["hop"]
        failed += swarm.failed
        swarms.append(swarm)
    print(json.dumps({"opened": sum(len(s.connections) for s in swarms), "failed": failed}),
          flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "close":
            break
        expected = int(line.split()[1])
        arrivals = {}
        total = sum(len(s.connections) for s in swarms)
        deadline = time.monotonic() + 30
        while sum(map(len, arrivals.values())) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        print(json.dumps(arrivals), flush=True)
    for swarm in swarms:
        await swarm.close()


# -- one measured round of the topology -----------------------------------------------------


def run(clients: int, relays: int, writes: int) -> tuple[list[list[str]], list[list[str]]]:
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        procs = Processes(Path(tmp))
        try:
            return _run(procs, clients, relays, writes)
        finally:
            procs.stop_all()


def _run(procs: Processes, clients: int, relays: int, writes: int,
         ) -> tuple[list[list[str]], list[list[str]]]:
    url, token, _server = procs.server()
    admin = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})
    key = admin.post("/tokens", json={"name": "relays", "kind": "sdk-server",
                                      "environment": "production"}).json()["secret"]
    admin.post("/flags", json={"key": FLAG, "type": "boolean",
                               "environments": {"production": {"enabled": True}}}
               ).raise_for_status()
    tier: list[tuple[str, str, subprocess.Popen[bytes]]] = []
    for n in range(relays):
        relay_url, process, _ = procs.relay(url, key, f"relay{n + 1}")
        tier.append((f"relay {n + 1} (1 hop)", relay_url, process))
    relay_url, process, _ = procs.relay(tier[0][1], key, "relay-2hop")
    tier.append(("relay 2 hops", relay_url, process))

    # Warm-up batch per relay (opened and closed), then the idle RSS.
    warm = {"key": key, "targets": [{"port": int(u.rsplit(":", 1)[1]), "count": 250, "hop": "w"}
                                    for _, u, _ in tier]}
    _close(_generators([warm]))
    time.sleep(1)
    idle = [rss_kib(p.pid) for _, _, p in tier]
    load_before = loadavg()

    per_relay = clients // len(tier)
    targets = [{"port": int(u.rsplit(":", 1)[1]), "count": per_relay,
                "hop": "2" if "2 hops" in name else "1"} for name, u, _ in tier]
    # Two generator processes, each with half of every relay's clients.
    halves = [{"key": key, "targets": [{**t, "count": t["count"] // 2 + (t["count"] % 2) * (1 - i)}
                                       for t in targets]} for i in range(2)]
    started = time.monotonic()
    gens = _generators(halves)
    opened = [json.loads(_line(g)) for g in gens]
    connect_s = time.monotonic() - started
    connected = sum(o["opened"] for o in opened)
    time.sleep(2)
    loaded = [rss_kib(p.pid) for _, _, p in tier]

    delays: dict[str, list[float]] = {"1": [], "2": []}
    for n in range(1, writes + 1):
        for g in gens:
            assert g.stdin is not None
            g.stdin.write(f"round {n}\n".encode())
            g.stdin.flush()
        time.sleep(0.2)  # the generators are listening for the round
        sent = time.monotonic()
        if n % 2:
            admin.post(f"/flags/{FLAG}/environments/production/kill").raise_for_status()
        else:
            admin.patch(f"/flags/{FLAG}/environments/production",
                        json={"enabled": True}).raise_for_status()
        for g in gens:
            for hop, times in json.loads(_line(g)).items():
                delays[hop].extend(t - sent for t in times)
        time.sleep(0.5)
    load_after = loadavg()
    _close(gens)
    admin.close()

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f}"

    rows = []
    for hop in ("1", "2"):
        values = delays[hop]
        expected = sum(t["count"] for t in targets if t["hop"] == hop) * writes
        rows.append([
            f"{connected:,}/{clients - clients % len(tier):,}", f"{connect_s:.0f}",
            "one" if hop == "1" else "two", f"{len(values):,}/{expected:,}",
            f"{ms(statistics.median(values))} / {ms(pct(values, 0.99))} / {ms(max(values))}"
            if values else "-",
            f"{load_before} → {load_after}",
        ])
    memory = [[f"{connected:,}", name, f"{per_relay:,}",
               f"{(after - before) / max(per_relay, 1):.1f}", f"{after / 1024:.0f}"]
              for (name, _, _), before, after in zip(tier, idle, loaded, strict=True)]
    return rows, memory


def _generators(specs: list[dict[str, Any]]) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, __file__, "--generator", json.dumps(spec)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE) for spec in specs]


def _line(process: subprocess.Popen[bytes]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line:
        raise RuntimeError("a load generator ended early")
    return line


def _close(gens: list[subprocess.Popen[bytes]]) -> None:
    for g in gens:
        assert g.stdin is not None
        try:
            g.stdin.write(b"close\n")
            g.stdin.close()
        except BrokenPipeError:
            pass
    for g in gens:
        g.wait(timeout=60)


# -- cold start -------------------------------------------------------------------------------


def cold_start(repeats: int) -> list[list[str]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-relay-cold-") as tmp:
        work = Path(tmp)
        procs = Processes(work)
        try:
            url, token, server = procs.server()
            admin = httpx.Client(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})
            key = admin.post("/tokens", json={"name": "cold", "kind": "sdk-server",
                                              "environment": "production"}).json()["secret"]
            admin.post("/flags", json={"key": FLAG, "type": "boolean",
                                       "environments": {"production": {"enabled": True}}})
            admin.close()
            _, relay, _ = procs.relay(url, key, "cold")
            time.sleep(1.5)  # the snapshot and the key list are written within 0.5 s
            procs.stop(relay)
            procs.stop(server)
            small = json.loads(next((work / "cold" / "environments").glob("*.json")).read_text())
            big = dict(small, flags={f"flag-{i:04d}": _flag(f"flag-{i:04d}") for i in range(1000)})
            dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
            for label, snapshot in ((f"{len(small['flags'])} flag(s)", small), ("1,000 flags", big)):
                digest = hashlib.sha256(key.encode()).hexdigest()
                (work / "cold" / "environments" / f"{digest}.json").write_text(json.dumps(snapshot))
                ready, first, reading = [], [], []
                for _ in range(repeats):
                    started = time.monotonic()
                    relay_url, relay, _ = procs.relay(dead, key, "cold")
                    ready.append(time.monotonic() - started)
                    answer = httpx.get(f"{relay_url}/sdk/flags",
                                       headers={"Authorization": f"Bearer {key}"})
                    assert answer.status_code == 200, answer.text
                    first.append(time.monotonic() - started)
                    procs.stop(relay)
                    said = READ_IN.findall((work / "cold.log").read_text())
                    reading.append(float(said[-1]) if said else float("nan"))
                rows.append([label, f"{len(json.dumps(snapshot)) / 1024:.0f}",
                             f"{statistics.median(ready):.2f} ({min(ready):.2f}-{max(ready):.2f})",
                             f"{statistics.median(first):.2f}",
                             f"{statistics.median(reading):.1f}", loadavg()])
        finally:
            procs.stop_all()
    return rows


def _flag(key: str) -> dict[str, Any]:
    return {"key": key, "type": "boolean", "kind": "release", "version": 1, "state": "active",
            "variants": {"true": True, "false": False}, "off_variant": "false", "salt": None,
            "client_side": False, "enabled": True, "prerequisites": [], "targets": [],
            "rules": [{"id": "r1", "conditions": [{"attribute": "plan", "operator": "equals",
                                                   "value": "pro"}], "variant": "true"}],
            "fallthrough": {"variant": "false"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="3000,12000")
    parser.add_argument("--relays", type=int, default=3, help="relays one hop from the server")
    parser.add_argument("--writes", type=int, default=10)
    parser.add_argument("--cold-repeats", type=int, default=5)
    parser.add_argument("--generator", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generator:
        import uvloop

        uvloop.run(generator(json.loads(args.generator)))
        return
    rows: list[list[str]] = []
    memory: list[list[str]] = []
    for n in (int(x) for x in args.clients.split(",")):
        print(f"{n} clients over {args.relays} + 1 relays ...", flush=True)
        got, mem = run(n, args.relays, args.writes)
        rows += got
        memory += mem
        print(table(HEADERS, got), flush=True)
        print(table(MEMORY, mem), flush=True)
    print("cold start ...", flush=True)
    cold = cold_start(args.cold_repeats)
    print(table(COLD, cold))
    write_section("relays", f"""
### Relays

`benchmarks/bench_relay.py --clients {args.clients} --relays {args.relays} --writes {args.writes}`:
one server (SQLite), {args.relays} relays following it and one relay following the first relay,
every process on this 2-core machine, which other work shares (the load average is beside each
row), with the clients spread evenly over the {args.relays + 1} relays by two load-generator
processes.  A kill (then a re-enable, alternately) is written through the server's API
{args.writes} times; propagation is from sending the write until each client has read the event,
so it includes the load generators' own time to read every socket on the same two cores.

{table(HEADERS, rows)}

Memory per connection at each relay (RSS growth / its clients; kernel socket buffers not
included):

{table(MEMORY, memory)}

Cold start: a relay started with its upstream down (nothing listens there) and a data directory
holding the snapshot, from starting the process (a new Python interpreter: imports are most of
it) until `/ready` answers 200 and until its first `GET /sdk/flags`, and the part of it the relay
spends reading the snapshot (its own log line); median of {args.cold_repeats} (min-max):

{table(COLD, cold)}
""")


HEADERS = ["clients connected", "connect s", "hops", "events read", "propagation p50/p99/max ms",
           "load average before → after"]
MEMORY = ["clients in total", "relay", "its clients", "RSS KiB/conn", "RSS MiB"]
COLD = ["snapshot", "KiB", "process start → /ready s", "→ first /sdk/flags s",
        "of which reading the snapshot ms", "load average"]

if __name__ == "__main__":
    main()
