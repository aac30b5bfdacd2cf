"""After a burst, the heap's free memory goes back to the operating system (glibc only)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from bot import heap
from bot.domain import Actor, Severity
from bot.issues import ReportIssue, decide_issue
from tests.bot_process import running_bot
from tests.conftest import Clock, plan_text, sign
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


async def test_a_running_bot_keeps_its_start_up_out_of_the_collector_and_collects_again(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    async with (
        running_bot(fake_slack, plan, f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}", tmp_path / "warroom.log") as bot,
        aiohttp.ClientSession() as session,
    ):
        body = urlencode(
            {"command": "/phase", "text": "list", "user_id": "U0DBA", "channel_id": "C0WAR", "team_id": "T111",
             "response_url": fake_slack.webhook_url, "trigger_id": "gc.1"}
        )  # fmt: skip
        async with session.post(f"{bot.base}/slack/events", data=body, headers=sign(body)) as response:
            assert response.status == 200
        await fake_slack.wait_for("respond", 1, within=10)
        async with session.get(f"{bot.base}/metrics") as response:
            metrics = {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in (await response.text()).splitlines()
                if line.startswith("warroom_gc_")
            }
    # modules, mappings and the plan: tens of thousands of objects no collection walks again
    assert metrics["warroom_gc_frozen_objects"] > 10_000
    # and the collector is on again: a command's allocations ran the youngest generation's collection
    assert metrics['warroom_gc_pause_seconds_count{generation="0"}'] >= 1
