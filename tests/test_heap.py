"""As a burst grows the heap, its free memory goes back to the operating system (glibc only); start-up's
objects stay out of the cyclic collector."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from bot import heap
from tests.bot_process import running_bot
from tests.conftest import plan_text, sign
from tests.fake_slack import FakeSlack

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


async def test_memory_is_given_back_each_time_the_process_has_grown_by_a_step() -> None:
    resident = [100, 110, 117, 130, 90, 100, 107, 95]  # MiB, one per look; after a trim, one more read
    looks = iter(resident)
    trims: list[int] = []

    def release() -> bool:
        trims.append(1)
        return True

    trimmer = heap.Trimmer(resident=lambda: next(looks) << 20, release=release, growth=16 << 20)
    assert await trimmer.check() is False  # 110: grown 10 since 100
    assert await trimmer.check() is True  # 117: grown 17, a trim; then 130 is what is left, in use
    assert trims == [1]
    assert await trimmer.check() is False  # 90: less than left after the trim (given back otherwise)
    assert await trimmer.check() is False  # 100: grown 10 since 90
    assert await trimmer.check() is True  # 107: grown 17 since 90
    assert trims == [1, 1]


async def test_without_a_reading_of_resident_memory_nothing_is_trimmed() -> None:
    trims: list[int] = []
    trimmer = heap.Trimmer(resident=lambda: None, release=lambda: bool(trims.append(1)))
    assert await trimmer.check() is False
    assert trims == []


@glibc
async def test_a_real_trimmer_gives_back_what_a_burst_left_free() -> None:
    heap.release_free_memory(above=0)  # free space left by other tests would take the fragments unseen
    trimmer = heap.Trimmer(growth=32 << 20)
    before = _resident()
    kept = _fragment(128)
    assert _resident() - before > 64 << 20, "the fragments are resident"
    assert await trimmer.check() is True
    assert _resident() - before < 48 << 20, "most of what was freed went back"
    del kept


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
