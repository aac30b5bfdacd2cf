"""Replays: a signed request captured and sent again inside Slack's 5-minute window is not acted on twice.

The inbox keeps every request's signature in the database, so replicas sharing it refuse the copy too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bot.app import Runtime
from storage import repo
from storage.db import create_engine, sessionmaker
from tests.bot_process import running_bot
from tests.conftest import SlackDriver, plan_text, sign
from tests.fake_slack import FakeSlack


def issue_body(fake: FakeSlack, text: str) -> str:
    form = {
        "token": "verification_token", "team_id": "T111", "team_domain": "test-domain", "channel_id": "C0WAR",
        "channel_name": "deployment-war-room", "user_id": "U0QA", "user_name": "u0qa", "command": "/issue",
        "text": text, "api_app_id": "A111", "response_url": fake.webhook_url, "trigger_id": "13345224609.738474",
    }  # fmt: skip
    return urlencode(form)


async def test_the_same_signed_request_sent_twice_files_one_issue_and_the_copy_gets_an_empty_200(
    slack: SlackDriver, runtime: Runtime, fake_slack: FakeSlack
) -> None:
    body = issue_body(fake_slack, "high api replayed by an attacker")
    headers = sign(body)
    first = await slack.client.post("/slack/events", data=body, headers=headers)
    assert first.status == 200
    await fake_slack.wait_for("respond", 1)
    await runtime.settle()

    copy = await slack.client.post("/slack/events", data=body, headers=headers)
    assert (copy.status, await copy.text()) == (200, "")
    await runtime.settle()
    await asyncio.sleep(0.3)  # a second reply, had one been started, would be recorded by now

    assert [i.impact for i in (await runtime.service.get("r1")).issues] == ["replayed by an attacker"]
    assert len(fake_slack.responses()) == 1
    assert len([p for p in fake_slack.posts("C0WAR") if "replayed by an attacker" in str(p.get("blocks"))]) == 1
    metrics = await (await slack.client.get("/metrics")).text()
    assert 'warroom_commands_total{command="/issue",result="replayed"}' in metrics


async def test_a_request_sent_to_two_replicas_on_postgresql_is_acted_on_once(
    fake_slack: FakeSlack,
    postgres_database: str,
    tmp_path: Path,
) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    body = issue_body(fake_slack, "high api sent to both replicas")
    headers = sign(body)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_bot(fake_slack, plan, postgres_database, tmp_path / "a.log"))
        b = await stack.enter_async_context(running_bot(fake_slack, plan, postgres_database, tmp_path / "b.log"))
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def send(base: str) -> int:
            async with session.post(f"{base}/slack/events", data=body, headers=headers) as response:
                return response.status

        assert await asyncio.gather(send(a.base), send(b.base)) == [200, 200]
        await fake_slack.wait_for("respond", 1, within=10)
        await asyncio.sleep(1)  # the other replica, had it acted, would have replied by now

    engine = create_engine(postgres_database)
    try:
        async with sessionmaker(engine)() as db:
            release = await repo.get_release(session=db, release_id="r1")
    finally:
        await engine.dispose()
    assert release is not None
    assert Counter(i.impact for i in release.issues) == Counter({"sent to both replicas": 1})
    assert len(fake_slack.responses()) == 1
    assert "not acted on again" in a.output() + b.output()
