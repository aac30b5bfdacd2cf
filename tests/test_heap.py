"""After a burst, the heap's free memory goes back to the operating system (glibc only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot import heap
from bot.domain import Actor, Severity
from bot.issues import ReportIssue, decide_issue
from tests.conftest import Clock
from tests.fake_slack import FakeSlack
from tests.test_schedule import new_runtime

DBA = Actor("U0DBA", frozenset({"dba"}))

glibc = pytest.mark.skipif(heap.heap() is None, reason="the C library is not glibc >= 2.33: nothing to trim")


def _resident() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _fragment(mib: int) -> list[bytes]:
    """Blocks of 2 KiB (past Python's small-object allocator, so in malloc's heap), one in 16 kept: the
    kept ones pin the heap the way a day's issues do, and the rest is freed inside it."""
    blocks = [os.urandom(8) * 256 for _ in range(mib * 512)]
    return blocks[::16]


@glibc
def test_a_burst_s_freed_memory_is_given_back() -> None:
    kept = _fragment(64)
    before = heap.heap()
    assert before is not None and before.free > 32 * 2**20, before
    resident = _resident()
    assert heap.release_free_memory() is True
    released = resident - _resident()
    assert released > 32 * 2**20, f"only {released >> 20} MiB given back"
    assert len(kept) == 64 * 512 // 16  # still there: only free memory went


@glibc
def test_a_heap_with_little_free_is_left_alone() -> None:
    kept = _fragment(4)
    free = heap.heap()
    assert free is not None
    assert heap.release_free_memory(above=free.free + 2**30) is False
    assert kept


async def test_the_sweep_gives_memory_back_once_commands_stop_not_while_they_come(
    fake_slack: FakeSlack, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    trims: list[int] = []
    monkeypatch.setattr(heap, "release_free_memory", lambda: trims.append(1) or True)
    rt = await new_runtime(fake_slack, database_url, clock)
    try:
        await rt.timekeeper.sweep()  # the first sweep after start: nothing seen before it to call quiet
        assert trims == []
        report = ReportIssue(Severity.LOW, "api", "slow")
        outcome = await rt.service.run("r1", lambda r, p, now: decide_issue(r, p, DBA, report, now))
        await rt.timekeeper.changed("r1", outcome)
        await rt.timekeeper.sweep()  # a command came since the last sweep: a burst may be under way
        assert trims == []
        await rt.timekeeper.sweep()  # none since: the burst is over
        assert trims == [1]
    finally:
        await rt.close()
