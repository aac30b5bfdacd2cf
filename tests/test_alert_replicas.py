"""The same alert delivered to two `warroom run` replicas on one PostgreSQL database at once: one issue."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from storage import repo
from storage.db import create_engine, sessionmaker
from tests.alert_payloads import TOKEN, alert, alert_plan_text, delivery
from tests.bot_process import running_bot
from tests.fake_slack import FakeSlack
from tests.test_replicas import metadata_keys

DELIVERIES = 8


async def test_one_alert_at_two_replicas_at_once_opens_one_issue(
    fake_slack: FakeSlack,
    postgres_database: str,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    plan = tmp_path / "plan.yml"
    plan.write_text(alert_plan_text(start=now - timedelta(minutes=10)))
    env = {"WARROOM_ALERTMANAGER_TOKEN": TOKEN}
    firing = alert("HighErrorRate", starts=now - timedelta(minutes=1), labels={"region": "region1"})
    async with AsyncExitStack() as stack:
        a, b = await asyncio.gather(
            *(
                stack.enter_async_context(
                    running_bot(fake_slack, plan, postgres_database, tmp_path / f"{name}.log", extra_env=env)
                )
                for name in ("a", "b")
            )
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def deliver(n: int) -> int:
            body = delivery({**firing, "annotations": {**firing["annotations"], "value": f"{n}%"}})
            url = f"{(a, b)[n % 2].base}/hooks/alertmanager"
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            async with session.post(url, data=json.dumps(body), headers=headers) as response:
                return response.status

        statuses = await asyncio.gather(*(deliver(n) for n in range(DELIVERIES)))
        assert statuses == [200] * DELIVERIES, f"{a.output()}\n{b.output()}"
        await fake_slack.wait_until(lambda: metadata_keys(fake_slack)["issue:1"] >= 1, 20)
    engine = create_engine(postgres_database)
    try:
        async with sessionmaker(engine)() as db:
            release = await repo.get_release(session=db, release_id="r1")
    finally:
        await engine.dispose()
    assert release is not None
    assert [i.number for i in release.issues] == [1]
    assert [(link.fingerprint, link.issue_number) for link in release.alerts] == [(firing["fingerprint"], 1)]
    keys = Counter(metadata_keys(fake_slack))
    assert keys["issue:1"] == 1 and keys["issue:1:incidents"] == 1 and "issue:2" not in keys
