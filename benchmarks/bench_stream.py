"""Streaming benchmark: N idle SSE connections held against one server process.

    .venv/bin/python benchmarks/bench_stream.py --clients 200,1000,10000 [--writes 20]

For each N a fresh ``python -m flagstaff.server`` (SQLite unless ``--database-url``) is started
and an asyncio load generator (raw asyncio streams, which scale to 10,000 sockets far better
than a full HTTP client) opens N ``/stream`` connections.  Measured:

* management API latency (``GET /flags/{key}``, sequential, from a separate thread) idle and
  with N connected, p50/p99 and the change;
* change propagation: a flag is created through the API, and the time from sending that request
  until each client has read the event, p50/p99/max over all clients and writes;
* server RSS growth per connection (user-space memory; kernel socket buffers are not included);
* CPU seconds used by the server and by the load generator while connected.

The server and the load generator share the machine, so the propagation figures include the
load generator's own time to read N sockets.  Results go to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section

EVENT = re.compile(rb'event: flag_updated\ndata: \{"key":"bench-(\d+)"')
TICKS = os.sysconf("SC_CLK_TCK")


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
    def __init__(self, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.token = "fsm_" + secrets.token_urlsafe(32)
        env = {**os.environ, "FLAGSTAFF_BOOTSTRAP_TOKEN": self.token, "FLAGSTAFF_DEMO": "false",
               "FLAGSTAFF_LOG_LEVEL": "WARNING"}
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

    def latency(self, samples: int) -> list[float]:
        out = []
        for _ in range(samples):
            started = time.perf_counter()
            response = self.client.get("/flags/bench-0")
            out.append(time.perf_counter() - started)
            assert response.status_code == 200
        return out


class Clients:
    """N raw SSE connections recording when each ``bench-<k>`` event arrives."""

    def __init__(self, port: int, key: str) -> None:
        self.request = (f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                        f"{key}\r\nAccept: text/event-stream\r\n\r\n").encode()
        self.port = port
        self.arrivals: dict[int, list[float]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.failed = 0

    async def open(self, n: int, batch: int = 250) -> None:
        for start in range(0, n, batch):
            opened = await asyncio.gather(
                *(self._connect() for _ in range(min(batch, n - start))), return_exceptions=True)
            self.failed += sum(isinstance(o, BaseException) for o in opened)

    async def _connect(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        writer.write(self.request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            writer.close()
            raise RuntimeError(head.decode(errors="replace"))
        self.writers.append(writer)
        self.tasks.append(asyncio.create_task(self._read(reader)))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        tail = b""
        seen = -1
        while chunk := await reader.read(1 << 16):
            now = time.perf_counter()
            data = tail + chunk
            for match in EVENT.finditer(data):
                k = int(match.group(1))
                if k > seen:
                    seen = k
                    self.arrivals.setdefault(k, []).append(now)
            tail = data[-256:]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()


async def run_one(n: int, *, writes: int, samples: int, database_url: str, log: Path) -> list[str]:
    server = Server(database_url, log)
    try:
        admin = server.client
        key = admin.post("/tokens", json={"name": "bench", "kind": "sdk-server",
                                          "environment": "production"}).json()["secret"]
        admin.post("/flags", json={"key": "bench-0", "type": "boolean",
                                   "environments": {"production": {"enabled": True}}})
        await asyncio.to_thread(server.latency, 50)  # warm-up
        idle = await asyncio.to_thread(server.latency, samples)
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
            await asyncio.sleep(0.3)
        await asyncio.sleep(2)
        cpu_server = cpu_seconds(server.process.pid) - cpu_server
        cpu_self = own_cpu() - cpu_self
        wall = time.monotonic() - started
        delays = [t - sent[k] for k, times in clients.arrivals.items() for t in times]
        delivered = sum(len(v) for v in clients.arrivals.values())
        await clients.close()
        connected = n - clients.failed
        p50_i, p99_i = statistics.median(idle), pct(idle, 0.99)
        p50_l, p99_l = statistics.median(loaded), pct(loaded, 0.99)
        ms = lambda s: f"{s * 1000:.1f}"  # noqa: E731
        return [
            f"{connected:,}/{n:,}", f"{connect_s:.1f}",
            f"{ms(p50_i)} / {ms(p99_i)}", f"{ms(p50_l)} / {ms(p99_l)}",
            f"{(p50_l / p50_i - 1) * 100:+.0f}% / {(p99_l / p99_i - 1) * 100:+.0f}%",
            f"{delivered:,}/{connected * writes:,}",
            f"{ms(statistics.median(delays))} / {ms(pct(delays, 0.99))} / {ms(max(delays))}"
            if delays else "-",
            f"{(rss_after - rss_before) / max(connected, 1):.1f}",
            f"{cpu_server:.1f} / {cpu_self:.1f} ({wall:.0f} s)",
        ]
    finally:
        server.stop()


HEADERS = ["clients", "connect s", "mgmt p50/p99 idle ms", "mgmt p50/p99 loaded ms",
           "mgmt change", "events delivered", "propagation p50/p99/max ms",
           "server RSS KiB/conn", "CPU s server / loadgen (wall)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="200,1000", help="comma-separated N values")
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.clients.split(",")):
            url = args.database_url or f"sqlite:///{Path(tmp) / f'bench-{n}.db'}"
            rows.append(asyncio.run(run_one(n, writes=args.writes, samples=args.samples,
                                            database_url=url, log=Path(tmp) / "server.log")))
            print(table(HEADERS, rows[-1:]), flush=True)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    markdown = (
        f"One server process ({backend}), N idle `/stream` connections from an asyncio load "
        f"generator on the same machine (fd limit {hard}). Management latency: sequential "
        f"`GET /flags/{{key}}`, {args.samples} samples. Propagation: {args.writes} flags created "
        "through the API, time from sending the request to each client reading the event.\n\n"
        + table(HEADERS, rows)
    )
    print()
    print(markdown)
    if not args.no_write:
        write_section("stream", markdown)


if __name__ == "__main__":
    main()
