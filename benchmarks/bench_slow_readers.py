"""Slow-reader benchmark: server memory while stream clients never read, over several rounds.

    .venv/bin/python benchmarks/bench_slow_readers.py [--rounds 3] [--clients 50] [--writes 50]
        [--compare]

One ``python -m flagstaff.server`` (SQLite unless ``--database-url``) holds five flags of about
0.74 MB each (so the ``put`` snapshot is about 3.7 MB).  Each round opens ``--clients`` raw
``GET /stream`` connections that never read a byte (a small receive buffer, so the kernel takes
little on their behalf), replaces the large flags ``--writes`` times through the API, then
closes the clients and waits until the server has let go of every stream.  Measured per round:
server RSS at the start, its peak (sampled every 0.1 s) and at the end; how many of the
clients the server dropped as slow while they were connected and how long the first drop took
(the documented bound is the send timeout, 10 s).  A warm-up round (shown, not checked) comes
first: the first large writes and the first ``put`` fill what the server keeps for good (the
shared snapshot, compiled snapshots, SQLite's page cache, worker threads' malloc arenas), and
the same growth shows with no stream client at all (``--clients 0``).  The check: every
measured round ends with RSS within 10 % of its own start and of the first measured round's
start.  Since the server gives memory back to the operating system after large frees (about a
second later, at most every 5 s: docs/streaming.md, "What memory is held, and when it comes
back"), the end is measured ``--settle`` seconds after the last stream is gone.  ``--compare``
first runs the same rounds against a server started with ``FLAGSTAFF_STREAM_RETURN_MEMORY=false``
(the allocator left alone), in the same run.  Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section
from bench_stream import Server, rss_kib

FLAGS = 5
# 7 rules x 10,000 ids of 8 characters: about 0.74 MB of JSON per flag.
RULES, VALUES = 7, 10_000
TOLERANCE = 0.10


def big_flag(key: str, generation: int) -> dict[str, object]:
    rules = [
        {"id": f"r{r}", "serve": {"variant": "true"}, "conditions": [
            {"attribute": "user.id", "operator": "in",
             "values": [f"{generation % 10}{r}{i:06d}" for i in range(VALUES)]}]}
        for r in range(RULES)
    ]
    return {"key": key, "type": "boolean",
            "environments": {"production": {"enabled": True, "rules": rules}}}


def metric(server: Server, name: str, labels: str = '{transport="sse"}') -> float:
    text = server.client.get("/metrics").text
    match = re.search(rf'^{re.escape(name + labels)} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def trims(server: Server) -> tuple[float, float]:
    """How many times the server gave freed memory back (malloc_trim), and the time it took."""
    return (metric(server, "flagstaff_memory_trims_total", ""),
            metric(server, "flagstaff_memory_trim_seconds_total", ""))


class Sampler:
    """The server's RSS every 0.1 s in a thread: the peak between ``reset`` and ``peak``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.max = max(self.max, rss_kib(self.pid))

    def reset(self) -> None:
        self.max = rss_kib(self.pid)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def open_silent(port: int, key: str) -> socket.socket:
    sock = socket.socket()
    # Set before connecting, so the advertised window is small: the kernel takes only a few
    # KiB for a client that never reads, and the rest stays with the server.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\r\n"
                 .encode())
    return sock


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def run(
    args: argparse.Namespace, database_url: str, log: Path, *, return_memory: bool = True
) -> tuple[list[list[str]], bool]:
    os.environ["FLAGSTAFF_STREAM_RETURN_MEMORY"] = "true" if return_memory else "false"
    server = Server(database_url, log)
    sampler = Sampler(server.process.pid)
    rows: list[list[str]] = []
    ok = True
    try:
        admin = server.client
        key = admin.post("/tokens", json={"name": "bench", "kind": "sdk-server",
                                          "environment": "production"}).json()["secret"]
        bodies = [big_flag(f"big-{f}", 0) for f in range(FLAGS)]
        size = len(json.dumps(bodies[0], separators=(",", ":")))
        for body in bodies:
            answer = admin.post("/flags", json=body)
            assert answer.status_code == 201, answer.text
        time.sleep(2)
        first_start: int | None = None
        generation = 0
        for round_no in range(0, args.rounds + 1):
            start = rss_kib(server.process.pid)
            if round_no == 1:
                first_start = start
            sampler.reset()
            slow_before = metric(server, "flagstaff_stream_slow_consumers_dropped_total")
            trims_before, trim_seconds_before = trims(server)
            opened = time.monotonic()
            clients = [open_silent(server.port, key) for _ in range(args.clients)]
            first_drop = None
            for w in range(args.writes):
                generation += 1
                answer = admin.put(f"/flags/big-{w % FLAGS}",
                                   json=big_flag(f"big-{w % FLAGS}", generation))
                assert answer.status_code == 200, answer.text
                if first_drop is None and metric(
                        server, "flagstaff_stream_slow_consumers_dropped_total") > slow_before:
                    first_drop = time.monotonic() - opened
            # Give the send timeout its time, so the drops (not the closes) are what is counted.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and metric(
                    server, "flagstaff_stream_slow_consumers_dropped_total") - slow_before \
                    < args.clients:
                if first_drop is None and metric(
                        server, "flagstaff_stream_slow_consumers_dropped_total") > slow_before:
                    first_drop = time.monotonic() - opened
                time.sleep(0.2)
            dropped = metric(server, "flagstaff_stream_slow_consumers_dropped_total") - slow_before
            peak = sampler.max
            for sock in clients:
                sock.close()
            deadline = time.monotonic() + 60
            while metric(server, "flagstaff_stream_clients") and time.monotonic() < deadline:
                time.sleep(0.2)
            # The server gives freed memory back a second after large frees, at most every
            # 5 s (realtime/memory.py): the end is measured once that has had its chance.
            time.sleep(args.settle)
            end = rss_kib(server.process.pid)
            trimmed, trim_seconds = trims(server)
            within = first_start is not None and abs(end - start) <= TOLERANCE * start \
                and abs(end - first_start) <= TOLERANCE * first_start
            if round_no:
                ok = ok and within
            rows.append([
                str(round_no) if round_no else "warm-up", f"{args.clients}", f"{args.writes} x {size / 1e6:.2f} MB",
                f"{start / 1024:.0f}", f"{peak / 1024:.0f}", f"{end / 1024:.0f}",
                f"{(end - start) / start * 100:+.1f}%",
                f"{int(dropped)}/{args.clients}",
                f"{first_drop:.1f}" if first_drop is not None else "-",
                f"{trimmed - trims_before:.0f} / {(trim_seconds - trim_seconds_before) * 1000:.0f}",
                "-" if not round_no else "yes" if within else "NO",
                load(),
            ])
            print(table(HEADERS, rows[-1:]), flush=True)
    finally:
        sampler.stop()
        server.stop()
    return rows, ok


HEADERS = ["round", "silent clients", "writes", "RSS start MiB", "RSS peak MiB", "RSS end MiB",
           "end vs start", "dropped as slow", "first drop s", "trims / ms", "end within 10 %",
           "load avg 1 min"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--writes", type=int, default=50, help="large-flag writes per round")
    parser.add_argument("--settle", type=float, default=8.0,
                        help="seconds after the clients are gone before the end is measured")
    parser.add_argument("--compare", action="store_true",
                        help="first the same rounds with the allocator left alone")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url else "SQLite"
    results: list[tuple[str, list[list[str]], bool]] = []
    variants = [("allocator left alone (`FLAGSTAFF_STREAM_RETURN_MEMORY=false`)", False),
                ("memory returned (the default)", True)] if args.compare else \
        [("memory returned (the default)", True)]
    load_before = load()
    for title, return_memory in variants:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            rows, ok = run(args, url, Path(tmp) / "server.log", return_memory=return_memory)
        results.append((title, rows, ok))
    ok = results[-1][2]
    markdown = (
        f"`benchmarks/bench_slow_readers.py{' --compare' if args.compare else ''}`: one server "
        f"process ({backend}) holding {FLAGS} flags of ~0.74 MB (a ~3.7 MB `put`). Each round "
        f"(after one warm-up round, not checked): {args.clients} `/stream` connections that "
        f"never read (4 KiB receive buffer), {args.writes} replacements of the large flags, "
        f"then the clients close; the end is measured {args.settle:g} s after the last stream "
        "is gone. RSS sampled every 0.1 s; the check is end-of-round RSS within 10 % of the "
        "round's start and of the first measured round's start. Trims: how many times the "
        "server gave freed memory back (`malloc_trim`) during the round, and their total time "
        f"(in a worker thread). Load average (1 min) {load_before} at the start of the run, and "
        "at the end of each round in the table: the machine is shared.\n"
    )
    for title, rows, passed in results:
        markdown += (f"\n**{title}**: **{'pass' if passed else 'FAIL'}**.\n\n"
                     + table(HEADERS, rows) + "\n")
    print()
    print(markdown)
    if not args.no_write:
        write_section("slow-readers", markdown)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
