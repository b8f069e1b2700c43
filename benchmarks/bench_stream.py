"""Streaming benchmark: N idle SSE connections held against one server process.

    .venv/bin/python benchmarks/bench_stream.py --clients 200,1000,10000 [--writes 20]

For each N a fresh ``python -m flagstaff.server`` (SQLite unless ``--database-url``) is started
and an asyncio load generator (raw asyncio streams, which scale to 10,000 sockets far better
than a full HTTP client) opens N ``/stream`` connections.  Measured:

* management API latency (``GET /flags/{key}``, sequential, from a separate process so the load
  generator's reading does not delay it; ``--samples`` per round after a discarded warm-up):
  idle before connecting, with N connected, and idle again after the N disconnected.  The
  change is against both idle rounds pooled; the two idle rounds are shown separately so that
  drift on a shared machine is visible next to the change it would otherwise pass for;
* change propagation: a flag is created through the API, and the time from sending that request
  until each client has read the event, p50/p99/max over all clients and writes;
* server RSS growth per connection, (RSS with N connected - RSS idle) / N, idle being after one
  batch of 250 connections was opened and closed (user-space memory; kernel socket buffers are
  not included);
* CPU seconds used by the server and by the load generator while connected.

The server and the load generator share the machine, so the propagation figures include the
load generator's own time to read N sockets.  Results go to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section
from _sse_swarm import SseConnection, SseSwarm

EVENT = re.compile(rb'event: flag_updated\ndata: \{"key":"bench-(\d+)"')
TICKS = os.sysconf("SC_CLK_TCK")
# Requests made but not counted at the start of every round: the probe's connection set-up and
# first calls (its imports, the server's caches) are no part of the latency being compared.
WARMUP = 200


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Server:
    def __init__(self, database_url: str, log: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.token = "fsm_" + secrets.token_urlsafe(32)
        env = {**os.environ, "FLAGSTAFF_BOOTSTRAP_TOKEN": self.token, "FLAGSTAFF_DEMO": "false",
               "FLAGSTAFF_LOG_LEVEL": "WARNING", "FLAGSTAFF_WORKERS": str(workers),
               # Every simulated client uses the one key; the per-key cap (default 1,000,
               # docs/reliability.md) would otherwise refuse all but the first thousand.
               "FLAGSTAFF_MAX_STREAMS_PER_KEY": "1000000"}
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flagstaff.server", "--port", str(self.port),
                 "--database-url", database_url], env=env, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=30,
                                   headers={"Authorization": f"Bearer {self.token}"})
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"server did not start; see {log}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def latency(self, samples: int, warmup: int = WARMUP) -> list[float]:
        """Sequential ``GET /flags/bench-0`` timings, taken by a separate process: in this one
        the load generator's event loop holds the GIL while it reads the streams, which would
        show up as API latency that the server never caused."""
        probe = subprocess.run(
            [sys.executable, __file__, "--latency-probe", self.url, self.token, str(samples),
             str(warmup)],
            check=True, capture_output=True, text=True)
        return [float(x) for x in probe.stdout.split()]

    def stream_clients(self) -> float:
        match = re.search(r"^flagstaff_stream_clients\{transport=\"sse\"\} (\S+)$",
                          self.client.get("/metrics").text, re.M)
        return float(match.group(1)) if match else 0.0


def latency_probe(url: str, token: str, samples: int, warmup: int) -> None:
    # The probe's own cyclic GC would show up as server latency.
    gc.disable()
    timings = []
    with httpx.Client(base_url=url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for n in range(warmup + samples):
            started = time.perf_counter()
            response = client.get("/flags/bench-0")
            elapsed = time.perf_counter() - started
            assert response.status_code == 200
            if n >= warmup:
                timings.append(elapsed)
    print("\n".join(map(str, timings)))


class Clients:
    """N raw SSE connections recording when each ``bench-<k>`` event arrives."""

    def __init__(self, port: int, key: str) -> None:
        request = (f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                   f"{key}\r\nAccept: text/event-stream\r\n\r\n").encode()
        self.swarm = SseSwarm(port, request, self._on_data)
        self.arrivals: dict[int, list[float]] = {}

    def _on_data(self, connection: SseConnection, buffer: bytes, now: float) -> None:
        for match in EVENT.finditer(buffer):
            k = int(match.group(1))
            if k > connection.seen:
                connection.seen = k
                self.arrivals.setdefault(k, []).append(now)

    @property
    def failed(self) -> int:
        return self.swarm.failed

    async def open(self, n: int) -> None:
        await self.swarm.open(n)

    def delivered(self) -> int:
        return sum(len(v) for v in self.arrivals.values())

    async def close(self) -> None:
        await self.swarm.close()


async def run_one(n: int, *, writes: int, samples: int, interval: float, database_url: str,
                  log: Path) -> list[str]:
    server = Server(database_url, log)
    try:
        admin = server.client
        key = admin.post("/tokens", json={"name": "bench", "kind": "sdk-server",
                                          "environment": "production"}).json()["secret"]
        admin.post("/flags", json={"key": "bench-0", "type": "boolean",
                                   "environments": {"production": {"enabled": True}}})
        idle_before = await asyncio.to_thread(server.latency, samples)
        # One batch of connections opened and closed first, so the idle figure already has
        # what any burst of connects starts once (the auth worker threads, ~0.1 MiB each);
        # that is not a per-connection cost and would otherwise inflate small N the most.
        warm = Clients(server.port, key)
        await warm.open(250)
        await warm.close()
        await asyncio.sleep(1)
        rss_before = rss_kib(server.process.pid)
        clients = Clients(server.port, key)
        cpu_server, cpu_self, started = cpu_seconds(server.process.pid), own_cpu(), time.monotonic()
        await clients.open(n)
        connect_s = time.monotonic() - started
        await asyncio.sleep(2)
        rss_after = rss_kib(server.process.pid)
        loaded = await asyncio.to_thread(server.latency, samples)
        sent: dict[int, float] = {}
        for k in range(1, writes + 1):
            sent[k] = time.perf_counter()
            await asyncio.to_thread(
                admin.post, "/flags",
                json={"key": f"bench-{k}", "type": "boolean",
                      "environments": {"production": {"enabled": True}}})
            await asyncio.sleep(interval)
        # Wait for the stragglers (up to 15 s) rather than a fixed time, so a slow fan-out
        # shows up as latency, not as events missing from the count.
        deadline = time.monotonic() + 15
        while clients.delivered() < (n - clients.failed) * writes and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        cpu_server = cpu_seconds(server.process.pid) - cpu_server
        cpu_self = own_cpu() - cpu_self
        wall = time.monotonic() - started
        delays = [t - sent[k] for k, times in clients.arrivals.items() for t in times]
        delivered = clients.delivered()
        await clients.close()
        # Idle again only once the server has noticed every disconnect.
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(server.stream_clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        idle_after = await asyncio.to_thread(server.latency, samples)
        connected = n - clients.failed
        idle = idle_before + idle_after
        p50_i, p99_i = statistics.median(idle), pct(idle, 0.99)
        p50_l, p99_l = statistics.median(loaded), pct(loaded, 0.99)

        def ms(seconds: float) -> str:
            return f"{seconds * 1000:.1f}"

        def p50_p99(values: list[float]) -> str:
            return f"{ms(statistics.median(values))} / {ms(pct(values, 0.99))}"

        return [
            f"{connected:,}/{n:,}", f"{connect_s:.1f}",
            f"{ms(p50_i)} / {ms(p99_i)} ({p50_p99(idle_before)}; {p50_p99(idle_after)})",
            f"{ms(p50_l)} / {ms(p99_l)}",
            f"{(p50_l / p50_i - 1) * 100:+.0f}% / {(p99_l / p99_i - 1) * 100:+.0f}%",
            f"{delivered:,}/{connected * writes:,}",
            f"{ms(statistics.median(delays))} / {ms(pct(delays, 0.99))} / {ms(max(delays))}"
            if delays else "-",
            f"{(rss_after - rss_before) / max(connected, 1):.1f}",
            f"{cpu_server:.1f} / {cpu_self:.1f} ({wall:.0f} s)",
        ]
    finally:
        server.stop()


HEADERS = ["clients", "connect s", "mgmt p50/p99 idle ms (before; after)",
           "mgmt p50/p99 loaded ms",
           "mgmt change", "events delivered", "propagation p50/p99/max ms",
           "server RSS KiB/conn", "CPU s server / loadgen (wall)"]


def main() -> None:
    if sys.argv[1:2] == ["--latency-probe"]:
        latency_probe(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="200,1000", help="comma-separated N values")
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1000,
                        help="management requests timed per round (idle before, loaded, idle after)")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between writes")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.clients.split(",")):
            url = args.database_url or f"sqlite:///{Path(tmp) / f'bench-{n}.db'}"
            # uvloop for the load generator too: it shares the two cores with the server.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                rows.append(runner.run(run_one(
                    n, writes=args.writes, samples=args.samples, interval=args.interval,
                    database_url=url, log=Path(tmp) / "server.log")))
            print(table(HEADERS, rows[-1:]), flush=True)
            print(f"(load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    markdown = (
        f"One server process ({backend}), N idle `/stream` connections from an asyncio load "
        f"generator on the same machine (fd limit {hard}). Management latency: sequential "
        f"`GET /flags/{{key}}`, {args.samples} samples per round after {WARMUP} discarded, idle "
        "before connecting and after disconnecting (pooled; each round in brackets) and loaded; "
        f"the change is loaded against pooled idle. Propagation: {args.writes} flags created "
        "through the API, time from sending the request to each client reading the event.\n\n"
        + table(HEADERS, rows)
    )
    print()
    print(markdown)
    if not args.no_write:
        write_section("stream", markdown)


if __name__ == "__main__":
    main()
