"""Giving the C heap's free memory back to the operating system as a burst grows it; keeping start-up's
objects out of Python's cyclic collector.

A burst of commands allocates and frees many blocks of a few hundred bytes to a few kilobytes while the
release's issues, kept for the day, are allocated in between. glibc's malloc keeps the freed space inside
its heap for reuse and returns only what lies at its top, so the process's resident memory stays at the
burst's high-water mark: after 5,000 `/issue` in one burst, 111 MiB of a 137 MiB heap was free yet
resident. `malloc_trim(0)` hands those free pages back (the memory stays reserved, so a later burst reuses
it without asking again); `Trimmer` does so each time the process has grown by a step. Elsewhere than
glibc there is nothing to do and `release_free_memory` says so.

A full cyclic collection walks every object the collector tracks and stops the event loop meanwhile. About
110,000 of them are made during start-up (modules, classes, SQLAlchemy's mappings, the plan) and live as
long as the process: walking them took some 0.1 s of each full collection, which a burst of commands
triggers every few seconds. `hold_collection` keeps the collector off while they are built (it would walk
them over and over as they grow), and `keep_start_up`, just before serving, collects once and freezes what is
left, so later collections walk only what was made since.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

TRIM_ABOVE = 8 * 1024 * 1024
"""Free bytes inside the heap worth a trim (the call walks the whole heap: ~10 ms for 150 MiB)."""
GROWTH = 16 * 1024 * 1024
"""Resident memory grown since the last trim that is worth a look at the heap (reading the heap's figures
walks its free lists, up to ~10 ms; reading resident memory costs microseconds)."""
WATCH_SECONDS = 2.0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@dataclass(frozen=True, slots=True)
class Heap:
    """glibc's heap: bytes in use and bytes free inside it (not counting blocks mapped on their own)."""

    in_use: int
    free: int


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallinfo2"):
        return None  # not glibc (musl, macOS), or a glibc older than 2.33
    libc.mallinfo2.restype = _Mallinfo2
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def heap() -> Heap | None:
    """The heap's figures, or None where the C library is not glibc."""
    libc = _libc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return Heap(in_use=int(info.uordblks), free=int(info.fordblks))


def release_free_memory(above: int = TRIM_ABOVE) -> bool:
    """Return the heap's free pages to the operating system when more than `above` bytes are free; True if
    it did. Safe from any thread; ctypes lets go of the GIL for the call, so run it off the event loop."""
    libc = _libc()
    before = heap()
    if libc is None or before is None or before.free <= above:
        return False
    libc.malloc_trim(0)
    log.debug(
        "gave the heap's free memory back: %d MiB free of %d MiB",
        before.free >> 20,
        (before.free + before.in_use) >> 20,
    )
    return True


def resident() -> int | None:
    """The process's resident memory in bytes, where /proc tells it (Linux); else None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class Trimmer:
    """Gives the heap's free memory back whenever resident memory has grown by `growth` since the last trim.

    A burst leaves free space inside glibc's heap that stays resident. Trimming at each step of growth keeps
    resident memory within about `growth` of what it was after the last trim (or lower since): what Python's
    own allocator holds free, and up to TRIM_ABOVE inside the heap, is not given back. Growth that is live
    data gives nothing back, and the next step is counted from what is left. The pages a trim gives back
    and the next commands take again cost a page fault each (~2 ms for 16 MiB).
    """

    def __init__(
        self,
        *,
        resident: Callable[[], int | None] = resident,
        release: Callable[[], bool] = release_free_memory,
        growth: int = GROWTH,
    ) -> None:
        self._resident = resident
        self._release = release
        self.growth = growth
        self._mark = resident()

    async def check(self) -> bool:
        """One look; True when it trimmed. The trim runs in a thread (ctypes lets go of the GIL)."""
        now = self._resident()
        if now is None or self._mark is None:
            return False
        if now - self._mark < self.growth:
            self._mark = min(self._mark, now)  # memory given back meanwhile: the next step counts from here
            return False
        trimmed = await asyncio.to_thread(self._release)
        self._mark = self._resident() or now
        return trimmed

    async def run(self, every: float = WATCH_SECONDS) -> None:
        """Look every `every` seconds until cancelled."""
        failing = False
        while True:
            await asyncio.sleep(every)
            try:
                await self.check()
            except Exception:
                if not failing:  # once, not every `every` seconds while it lasts
                    log.warning("could not give the heap's free memory back", exc_info=True)
                failing = True
            else:
                failing = False


def hold_collection() -> None:
    """No cyclic collection until `keep_start_up`: start-up builds long-lived objects only."""
    gc.disable()


def keep_start_up() -> int:
    """Collect start-up's garbage once, then leave what survived out of every later collection; returns how
    many objects that is. The collector is on again afterwards."""
    gc.collect()
    gc.freeze()
    gc.enable()
    return gc.get_freeze_count()
