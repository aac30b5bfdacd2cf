"""Two `warroom run` processes sharing one PostgreSQL database, as when several replicas run.

Both start at the same moment against an empty database (migrations and the first plan load race),
both timers fire for the same announcements, and commands arrive at both at once. Every message must
be posted exactly once and every change must count.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.domain import PhaseStatus
from storage import repo
from storage.db import create_engine, sessionmaker
from tests.bot_process import running_bot
from tests.conftest import sign
from tests.fake_slack import FakeSlack

PHASES = 8

REPLICA_PLAN = """
release:
  id: r1
  name: Replicated Platform
  version: v2.0.0
  timezone: UTC
  window: {{start: {start}, end: {end}}}
channels: {{war_room: C0WAR, announcements: C0ANN}}
people:
  release_manager: [U0RM]
  dba: [U0DBA]
phases:
{phases}
announcements:
  - {{id: early, at: -10m, channel: war_room, text: "Due before either replica started, within its grace"}}
  - {{id: a1, at: -3s, channel: announcements, text: "Announcement one"}}
  - {{id: a2, at: -2s, channel: war_room, text: "Announcement two"}}
  - {{id: a3, at: -1s, channel: announcements, text: "Announcement three"}}
  - {{id: start, at: 0, channel: announcements, template: deployment_start}}
"""


def replica_plan(start: datetime) -> str:
    phases = "\n".join(
        f"  - {{id: p{n}, name: Phase {n}, start: +{n * 10}m, duration: 10m, owner: dba}}" for n in range(PHASES)
    )
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return REPLICA_PLAN.format(
        start=start.strftime(stamp), end=(start + timedelta(hours=3)).strftime(stamp), phases=phases
    )


def metadata_keys(fake: FakeSlack) -> Counter[str]:
    return Counter(
        (p.get("metadata") or {}).get("event_payload", {}).get("key", "") for p in fake.posts() if p.get("metadata")
    )


async def test_two_replicas_on_postgresql_post_each_message_once_and_lose_no_change(
    fake_slack: FakeSlack, postgres_database: str, tmp_path: Path
) -> None:
    # T0 a few seconds ahead: some announcements fall due while both replicas start, some after
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    plan = tmp_path / "plan.yml"
    plan.write_text(replica_plan(t0))
    async with AsyncExitStack() as stack:
        a, b = await asyncio.gather(
            *(
                stack.enter_async_context(running_bot(fake_slack, plan, postgres_database, tmp_path / f"{name}.log"))
                for name in ("a", "b")
            )
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def phase_done(base: str, n: int) -> int:
            form = {
                "command": "/phase", "text": f"done p{n}", "user_id": "U0DBA", "channel_id": "C0WAR",
                "channel_name": "war", "team_id": "T111", "response_url": fake_slack.webhook_url,
                "trigger_id": str(n),
            }  # fmt: skip
            body = urlencode(form)
            async with session.post(f"{base}/slack/events", data=body, headers=sign(body)) as response:
                return response.status

        statuses = await asyncio.gather(*(phase_done((a, b)[n % 2].base, n) for n in range(PHASES)))
        assert statuses == [200] * PHASES
        await fake_slack.wait_for("respond", PHASES, within=20)
        announced = {f"announcement:{key}" for key in ("early", "a1", "a2", "a3", "start")}
        try:
            await fake_slack.wait_until(lambda: announced <= set(metadata_keys(fake_slack)), 30)
        except TimeoutError:
            pytest.fail(f"posted so far: {metadata_keys(fake_slack)}\n{a.output()}\n{b.output()}")
    # both replicas have stopped and settled: nothing more can arrive

    duplicates = {key: n for key, n in metadata_keys(fake_slack).items() if n > 1}
    assert not duplicates, f"posted more than once: {duplicates}"
    assert [r["text"] for r in fake_slack.responses() if "done" not in r["text"]] == []

    engine = create_engine(postgres_database)
    try:
        async with sessionmaker(engine)() as db:
            release = await repo.get_release(session=db, release_id="r1")
            items = {i.key: i for i in await repo.outbox(session=db, release_id="r1")}
            timeline = await repo.get_timeline(session=db, release_id="r1")
    finally:
        await engine.dispose()
    assert release is not None
    assert [p.status for p in release.phases] == [PhaseStatus.DONE] * PHASES
    assert {key: items[key].status for key in announced} == dict.fromkeys(announced, "sent")
    assert sum(1 for e in timeline if e.kind == "phase.done") == PHASES
    assert sum(1 for e in timeline if e.kind == "release.loaded") >= 1
