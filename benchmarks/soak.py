"""Soak: one server under steady writes, N streaming clients and remote evaluations.

    .venv/bin/python benchmarks/soak.py [--minutes 15] [--clients 1000] [--writes-per-second 5]
                                        [--evaluations-per-second 20] [--database-url URL]
                                        [--prune-seconds 300] [--tracemalloc FRAMES]

A fresh ``python -m flagstaff.server`` (SQLite in a temporary directory unless
``--database-url``) gets 20 flags and one server-side SDK key.  N raw asyncio SSE readers
(HTTP/1.0, so the body is the plain event stream) follow ``/stream`` and keep each flag's
version as the events say; a writer toggles random flags; an evaluator calls ``/evaluate``.
Every ``--sample-seconds`` the server's RSS, open file descriptors (``/proc/<pid>/fd``),
the memory blocks held by Python objects and the memory SQLite has allocated in the server
(``flagstaff_python_allocated_blocks``, ``flagstaff_sqlite_memory_bytes`` from ``/metrics``)
are recorded.  At the end writes stop, and every client's flag versions must
equal the server's ``GET /sdk/flags`` snapshot.  Exit status 1 if any client differs, any API
call failed, a stream broke, or open fds (by more than two), RSS (less SQLite's own
allocations, which must stay under ``--sqlite-bound-mib``) or Python blocks grew by more than
``--max-late-growth-pct`` over the second half of the run (warm-up is over by then; a leak
keeps growing).  Figures are printed (copy them to
docs/reliability.md).

``--prune-seconds`` runs change-log retention more often than the server's default (it once
left memory behind at every pass); ``--tracemalloc N`` runs the server under tracemalloc with
N frames and prints where Python-level allocations grew over the second half, which tells a
Python leak from memory held below Python (C libraries, the allocator).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import httpx

FLAGS = [f"soak-{i:02d}" for i in range(20)]

# Runs the server under tracemalloc; SIGUSR1 writes a snapshot to $SOAK_SNAPSHOTS/<n>.bin
# (renamed into place once complete).  Diagnostics only: tracing slows the server down.
TRACED_SERVER = """
import os, runpy, signal, sys, tracemalloc
count = 0
def dump(*_):
    global count
    count += 1
    path = os.path.join(os.environ["SOAK_SNAPSHOTS"], f"{count}.bin")
    tracemalloc.take_snapshot().dump(path + ".part")
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR1, dump)
sys.argv[0] = "flagstaff.server"
runpy.run_module("flagstaff.server", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_mib(pid: int) -> dict[str, float]:
    """The kB lines of one read of ``/proc/<pid>/status``, in MiB (``VmRSS``; ``RssAnon``:
    malloc'd memory, ``RssFile``: mapped files, ``RssShmem``: shared memory such as SQLite's
    WAL index), so the parts of a sample add up to its total."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.endswith(" kB"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def memory_gauges(api: httpx.AsyncClient) -> tuple[int, float | None]:
    """(Python's allocated blocks, MiB allocated by SQLite in the server or None) from /metrics."""
    gauges = {}
    for line in (await api.get("/metrics")).text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("flagstaff_python_allocated_blocks", "flagstaff_sqlite_memory_bytes"):
            gauges[name] = float(value)
    sqlite = gauges.get("flagstaff_sqlite_memory_bytes")
    return int(gauges["flagstaff_python_allocated_blocks"]), None if sqlite is None else sqlite / 2**20


@dataclass
class Sample:
    t: float
    rss_mib: float
    fds: int
    blocks: int
    sqlite_mib: float | None
    anon_file_shmem: tuple[float, float, float]


async def sample(api: httpx.AsyncClient, pid: int, started: float) -> Sample:
    blocks, sqlite_mib = await memory_gauges(api)
    memory = memory_mib(pid)
    parts = (memory["RssAnon"], memory["RssFile"], memory["RssShmem"])
    return Sample(time.monotonic() - started, memory["VmRSS"], open_fds(pid), blocks, sqlite_mib, parts)


class Snapshots:
    """Tracemalloc snapshots of the server, taken on request (``--tracemalloc``)."""

    def __init__(self, directory: Path, server: subprocess.Popen[bytes]) -> None:
        self.directory, self.server = directory, server
        self.taken: list[Path] = []

    async def take(self) -> None:
        path = self.directory / f"{len(self.taken) + 1}.bin"
        self.server.send_signal(signal.SIGUSR1)
        while not path.exists():
            await asyncio.sleep(0.2)
        self.taken.append(path)

    def report(self, top: int = 12) -> None:
        """Where Python-level allocations grew between the middle and the last snapshot."""
        if len(self.taken) < 2:
            return
        before, after = (tracemalloc.Snapshot.load(str(p)) for p in self.taken[-2:])
        stats = after.compare_to(before, "traceback")
        grown = sum(s.size_diff for s in stats)
        traced = sum(t.size for t in after.traces) / 2**20
        print(f"tracemalloc, second half: {grown / 2**10:+.0f} KiB in all "
              f"({traced:.1f} MiB traced); largest growth:")
        for stat in stats[:top]:
            print(f"  {stat.size_diff / 2**10:+8.1f} KiB {stat.count_diff:+6d} blocks")
            for line in stat.traceback.format(limit=6, most_recent_first=True):
                print("     ", line)


def growth_pct(before: float, after: float) -> float:
    return 100.0 * (after - before) / before


@dataclass
class Client:
    """One SSE reader: the flag versions it has applied, from the events alone."""

    versions: dict[str, int] = field(default_factory=dict)
    last_id: int = 0
    events: int = 0
    broken: str | None = None
    reconnects: int = 0
    buffer: bytes = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            self._apply(block)

    def _apply(self, block: bytes) -> None:
        event, data, ident = "", "", None
        for line in block.decode().split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line.startswith("id:"):
                ident = int(line[3:].strip())
        if not event:
            return
        self.events += 1
        payload = json.loads(data)
        if event == "put":
            self.versions = {k: int(f["version"]) for k, f in payload["flags"].items()}
        elif event == "flag_updated":
            self.versions[payload["key"]] = int(payload["flag"]["version"])
        elif event == "flag_archived":
            self.versions.pop(payload["key"], None)
        if ident is not None:
            self.last_id = ident


async def follow(client: Client, port: int, key: str, stop: asyncio.Event) -> None:
    """Follow ``/stream`` as an SDK does: when the server ends the stream (connections have a
    maximum age of 30 to 60 minutes), reconnect with ``Last-Event-ID``.  An error status, a
    reset or an unreadable event is a broken stream."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            resume = f"Last-Event-ID: {client.last_id}\r\n" if client.last_id else ""
            writer.write(f"GET /stream HTTP/1.0\r\nHost: soak\r\nAuthorization: Bearer {key}\r\n"
                         f"{resume}\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
                client.broken = head.split(b"\r\n", 1)[0].decode()
                return
            client.buffer = b""  # an event cut off by the close is sent again after last_id
            while not stop.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                client.feed(data)
            writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            client.broken = repr(exc)
            return
        if not stop.is_set():
            client.reconnects += 1
            await asyncio.sleep(random.uniform(0.1, 1.0))


async def soak(args: argparse.Namespace) -> int:
    port = free_port()
    admin = "fsm_" + secrets.token_urlsafe(32)
    tmp = Path(tempfile.mkdtemp(prefix="rel_soak_"))
    env = {**os.environ, "FLAGSTAFF_BOOTSTRAP_TOKEN": admin, "FLAGSTAFF_DEMO": "false",
           "FLAGSTAFF_WORKERS": "1",
           "FLAGSTAFF_LOG_LEVEL": "WARNING", "FLAGSTAFF_MAX_STREAMS_PER_KEY": str(args.clients + 10),
           "FLAGSTAFF_STREAM_PRUNE_INTERVAL_SECONDS": str(args.prune_seconds)}
    url = args.database_url or f"sqlite:///{tmp / 'soak.db'}"
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    command = [sys.executable, "-m", "flagstaff.server"]
    if args.tracemalloc:
        command = [sys.executable, "-X", f"tracemalloc={args.tracemalloc}", "-c", TRACED_SERVER]
        env["SOAK_SNAPSHOTS"] = str(tmp)
    server = subprocess.Popen(
        [*command, "--port", str(port), "--database-url", url],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    snapshots = Snapshots(tmp, server)
    errors: list[str] = []
    samples: list[Sample] = []
    writes = evaluations = 0
    try:
        base = f"http://127.0.0.1:{port}"
        h = {"Authorization": f"Bearer {admin}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            # Up to a minute: a traced server starts several times slower.
            for _ in range(600):
                if server.poll() is not None:
                    sys.exit(f"the server exited with {server.returncode}; see {tmp / 'server.log'}")
                try:
                    if (await api.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            for key in FLAGS:
                r = await api.post("/flags", headers=h, json={"key": key, "type": "boolean",
                                   "environments": {"production": {"enabled": True}}})
                r.raise_for_status()
            r = await api.post("/tokens", headers=h, json={"name": "soak", "kind": "sdk-server",
                                                           "environment": "production"})
            sdk = r.json()["secret"]
            stop = asyncio.Event()
            clients = [Client() for _ in range(args.clients)]
            tasks = []
            for i, c in enumerate(clients):
                tasks.append(asyncio.create_task(follow(c, port, sdk, stop)))
                if i % 100 == 99:
                    await asyncio.sleep(0.05)
            started = time.monotonic()
            end = started + args.minutes * 60
            next_sample = started
            write_gap = 1 / args.writes_per_second
            eval_gap = 1 / args.evaluations_per_second
            next_write = next_eval = started
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_sample:
                    samples.append(await sample(api, server.pid, started))
                    next_sample += args.sample_seconds
                    # After warm-up, at the middle, and (below) at the end.
                    middle = now - started >= (end - started) / 2
                    if args.tracemalloc and len(snapshots.taken) < 1 + middle and len(samples) >= 3:
                        await snapshots.take()
                if now >= next_write:
                    key = random.choice(FLAGS)
                    r = await api.patch(f"/flags/{key}/environments/production", headers=h,
                                        json={"enabled": random.random() < 0.5})
                    writes += 1
                    if r.status_code != 200:
                        errors.append(f"write {r.status_code}: {r.text[:200]}")
                    next_write += write_gap
                if now >= next_eval:
                    r = await api.post("/evaluate", headers={"Authorization": f"Bearer {sdk}"},
                                       json={"flag": random.choice(FLAGS),
                                             "context": {"targeting_key": f"user-{random.randrange(10**6)}"}})
                    evaluations += 1
                    if r.status_code != 200:
                        errors.append(f"evaluate {r.status_code}: {r.text[:200]}")
                    next_eval += eval_gap
                await asyncio.sleep(max(0.0, min(next_write, next_eval, next_sample) - time.monotonic()))
            samples.append(await sample(api, server.pid, started))
            if args.tracemalloc:
                await snapshots.take()

            snapshot = (await api.get("/sdk/flags", headers={"Authorization": f"Bearer {sdk}"})).json()
            expected = {k: int(f["version"]) for k, f in snapshot["flags"].items()}
            settle = time.monotonic() + 60
            while time.monotonic() < settle and any(
                c.last_id < snapshot["version"] and c.broken is None for c in clients
            ):
                await asyncio.sleep(0.2)
            stop.set()
            differing = [i for i, c in enumerate(clients) if c.versions != expected]
            broken = [c.broken for c in clients if c.broken]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    first, last = samples[0], samples[-1]
    # The first samples are taken while clients are still connecting.
    warm = samples[min(2, len(samples) - 1)]
    half = samples[len(samples) // 2]
    peak_rss = max(s.rss_mib for s in samples)
    print(f"soak: {args.minutes:g} min, {args.clients} SSE clients, {writes} writes, "
          f"{evaluations} evaluations, {sum(c.events for c in clients)} events delivered")
    print("| t (s) | server RSS (MiB) | anon / file / shmem | of which SQLite (MiB) | Python blocks "
          "| open fds |")
    print("|---:|---:|---:|---:|---:|---:|")
    step = max(1, len(samples) // 12)
    for s in samples[::step] + ([last] if (len(samples) - 1) % step else []):
        sqlite = "-" if s.sqlite_mib is None else f"{s.sqlite_mib:.1f}"
        parts = " / ".join(f"{p:.1f}" for p in s.anon_file_shmem)
        print(f"| {s.t:.0f} | {s.rss_mib:.1f} | {parts} | {sqlite} | {s.blocks:,} | {s.fds} |")
    late_rss = growth_pct(half.rss_mib, last.rss_mib)
    late_blocks = growth_pct(half.blocks, last.blocks)
    # SQLite's page caches grow with the database file up to their configured size (2 MiB per
    # pooled connection by default): bounded, and measured, so RSS is judged without them and
    # they are judged against their bound.
    sqlite_peak = max((s.sqlite_mib or 0.0) for s in samples)
    if half.sqlite_mib is not None and last.sqlite_mib is not None:
        late_rss = growth_pct(half.rss_mib - half.sqlite_mib, last.rss_mib - last.sqlite_mib)
    print(f"RSS {first.rss_mib:.1f} -> {last.rss_mib:.1f} MiB (after warm-up {warm.rss_mib:.1f} -> "
          f"{last.rss_mib:.1f}, peak {peak_rss:.1f}); Python blocks after warm-up {warm.blocks:,} -> "
          f"{last.blocks:,}; fds {first.fds} -> {warm.fds} -> {last.fds}")
    without = "" if last.sqlite_mib is None else " without SQLite's allocations"
    print(f"second half (t={half.t:.0f} s to {last.t:.0f} s): RSS{without} {late_rss:+.2f} %, "
          f"Python blocks {late_blocks:+.2f} % (limit {args.max_late_growth_pct:g} %); "
          f"SQLite peak {sqlite_peak:.1f} MiB (bound {args.sqlite_bound_mib:g} MiB)")
    print(f"final state: {len(clients) - len(differing)}/{len(clients)} clients equal the server "
          f"snapshot (version {snapshot['version']}); streams ended by the server and resumed: "
          f"{sum(c.reconnects for c in clients)}; broken streams: {len(broken)}; "
          f"error responses: {len(errors)}")
    # A pooled database connection opened late is a file or two; a leak is one per something.
    grew = (max(late_rss, late_blocks) > args.max_late_growth_pct or last.fds > half.fds + 2
            or sqlite_peak > args.sqlite_bound_mib)
    if grew:
        print("   memory or file descriptors were not flat")
    snapshots.report()
    for line in (errors + [str(b) for b in broken])[:10]:
        print("  ", line)
    return 1 if differing or broken or errors or grew else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--writes-per-second", type=float, default=5.0)
    parser.add_argument("--evaluations-per-second", type=float, default=20.0)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--database-url")
    parser.add_argument("--prune-seconds", type=float, default=300.0,
                        help="how often the server applies change-log retention")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="trace the server's Python allocations (slows it) and print where "
                             "they grew over the second half")
    parser.add_argument("--max-late-growth-pct", type=float, default=1.0,
                        help="allowed growth of RSS and of Python blocks over the second half")
    parser.add_argument("--sqlite-bound-mib", type=float, default=32.0,
                        help="SQLite's page caches: 15 pooled connections x 2 MiB, plus slack")
    sys.exit(asyncio.run(soak(parser.parse_args())))


if __name__ == "__main__":
    main()
