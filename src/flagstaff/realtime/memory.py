"""Giving memory back to the operating system after large buffers are freed (glibc only).

Large flags make large, short-lived buffers: a request body and its parsed objects, the change
event, each encoded event, the ``put`` snapshot (megabytes), the pieces a stalled connection
leaves in the server's write buffers.  Freed, their memory goes back to glibc's malloc, which
keeps it: its heaps (one per thread that allocates, so the worker threads' too) give memory
back only from their top, and glibc raises its mmap threshold after the first large free, so
later large buffers come from those heaps as well.  Measured under slow readers, the memory
malloc had in use stayed flat from round to round while RSS grew 8-28 % a round
(docs/streaming.md, "What memory is held, and when it comes back").  Two remedies:

* :func:`tune_allocator`, once at server start: a fixed mmap threshold, so buffers of 128 KiB
  and more are mapped on their own and unmapped when freed instead of fragmenting a heap;
* :class:`MemoryReturn`: ``malloc_trim(0)`` (which also releases free pages inside the heaps,
  in every arena) a little after large buffers were freed, at most once per interval, in a
  worker thread: it walks every free chunk, tens of milliseconds on a large heap.

Elsewhere (musl, macOS, Windows) both are no-ops: those allocators do not have this problem in
the same form, and the functions do not exist.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import os
import platform
import time
from collections.abc import Callable

log = logging.getLogger("flagstaff.realtime.memory")

# glibc's mallopt parameters (malloc.h).
M_MMAP_THRESHOLD = -3
# Buffers this large are mmapped on their own: the default's initial value, but fixed (setting
# it turns off glibc's raising it to the largest buffer freed so far, up to 32 MiB).
MMAP_THRESHOLD = 128 * 1024
# A trim is due once this much was freed since the last one, counting only frees of at least
# SMALLEST bytes each: smaller ones (an evaluation request, a small flag's event) malloc reuses
# well, and a busy server would otherwise trim every few seconds for nothing.
LARGE = 256 * 1024
SMALLEST = 64 * 1024

Trim = Callable[[], object]
# Called after each trim with its duration (s) and the RSS it gave back (bytes, 0 if unknown).
TrimObserver = Callable[[float, int], None]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - present on glibc; checked before relying on it
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def malloc_trim() -> Trim | None:
    """glibc's ``malloc_trim(0)`` (None where there is no glibc)."""
    libc = _glibc()
    return None if libc is None else functools.partial(libc.malloc_trim, 0)


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold for this process (see the module's docstring); True if set.

    Left alone when ``MALLOC_MMAP_THRESHOLD_`` is in the environment: an operator's own
    setting wins.
    """
    libc = _glibc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def rss_bytes() -> int:
    """This process's resident set (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MemoryReturn:
    """Debounced ``malloc_trim(0)``: :meth:`freed` reports large buffers freed (or about to be,
    once the connection holding them has closed); a trim runs ``delay`` seconds after the first
    report that brings the total since the last trim to ``threshold`` (reports under
    ``smallest`` do not count), and no sooner than
    ``min_interval`` after the previous one.  The delay lets the transports of dropped
    connections close (their buffers go with them) and coalesces a burst of reports into one
    trim; the interval bounds what trimming costs under a steady stream of large writes.
    """

    def __init__(
        self,
        *,
        trim: Trim | None = None,
        delay: float = 1.0,
        min_interval: float = 5.0,
        threshold: int = LARGE,
        smallest: int = SMALLEST,
        on_trim: TrimObserver | None = None,
    ) -> None:
        self._trim = trim
        self.delay = delay
        self.min_interval = min_interval
        self.threshold = threshold
        self.smallest = smallest
        self.on_trim = on_trim
        self._pending = 0
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None

    @classmethod
    def for_this_process(cls, *, on_trim: TrimObserver | None = None) -> MemoryReturn:
        """One that trims with glibc's ``malloc_trim`` (never trims without glibc)."""
        return cls(trim=malloc_trim(), on_trim=on_trim)

    @property
    def scheduled(self) -> bool:
        """Whether a trim is due or running."""
        return self._timer is not None or self._running is not None

    def freed(self, nbytes: int) -> None:
        if self._trim is None or nbytes < self.smallest or nbytes <= 0:
            return
        self._pending += nbytes
        self._schedule()

    def _schedule(self) -> None:
        if self._pending < self.threshold or self.scheduled:
            return
        loop = asyncio.get_running_loop()
        when = max(loop.time() + self.delay, self._last + self.min_interval)
        self._timer = loop.call_at(when, self._start)

    def _start(self) -> None:
        self._timer = None
        self._running = asyncio.get_running_loop().create_task(
            self.trim_now(), name="flagstaff-malloc-trim"
        )

    async def trim_now(self) -> None:
        """Trim at once (the scheduled trim runs this)."""
        trim = self._trim
        if trim is None:
            return
        self._pending = 0
        before = rss_bytes()
        started = time.perf_counter()
        try:
            # A worker thread (ctypes releases the GIL): the walk takes tens of milliseconds on
            # a large heap, which the event loop should not wait for.
            await asyncio.to_thread(trim)
        except Exception:
            log.warning("malloc_trim failed; not trimming again", exc_info=True)
            self._trim = None
            return
        finally:
            self._last = asyncio.get_running_loop().time()
            if self._running is asyncio.current_task():
                self._running = None
        seconds = time.perf_counter() - started
        returned = max(0, before - rss_bytes()) if before else 0
        log.debug("malloc_trim took %.1f ms and gave back %d KiB", seconds * 1000,
                  returned // 1024)
        if self.on_trim is not None:
            self.on_trim(seconds, returned)
        self._schedule()  # what was freed while it ran

    async def close(self) -> None:
        """Cancel a pending trim and wait for a running one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        running, self._running = self._running, None
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
