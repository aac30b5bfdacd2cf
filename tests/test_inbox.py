"""Acked means kept: a command or click Slack got its acknowledgement for survives a crash, and is applied once.

The real program is killed (SIGKILL) while acknowledged requests are still being processed: the fake Slack
holds the user-group look-up that every command and click makes before its transaction, so all of them are
acknowledged and none is saved at the moment of the kill. After the restart each one must have taken effect
exactly once, and each person must have had their reply.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.app import build_runtime
from bot.ids import ActionId
from storage import repo
from tests.bot_process import running_bot
from tests.conftest import make_settings, plan_text, sign
from tests.fake_slack import FakeSlack
from tests.test_gonogo_handlers import click

ISSUES = 8
VOTERS = ("U0RM", "U0DEV", "U0DBA")


def group_plan(start: datetime) -> str:
    """The test plan with its on-call people as a user group: every command looks the group up first."""
    return plan_text(start).replace("oncall: [U0OC1, U0OC2]", "oncall: [S0ONCALL]")


def issue_form(fake: FakeSlack, n: int, user: str = "U0QA") -> str:
    form = {
        "token": "verification_token", "team_id": "T111", "team_domain": "test-domain", "channel_id": "C0WAR",
        "channel_name": "deployment-war-room", "user_id": user, "user_name": user.lower(), "command": "/issue",
        "text": f"high api impact number {n}", "api_app_id": "A111", "response_url": fake.webhook_url,
        "trigger_id": f"{n}.issue.trigger",
    }  # fmt: skip
    return urlencode(form)


def vote_form(fake: FakeSlack, user: str) -> str:
    return urlencode({"payload": json.dumps(click(fake, ActionId.VOTE_GO, user))})


async def post(session: aiohttp.ClientSession, base: str, body: str) -> int:
    async with session.post(f"{base}/slack/events", data=body, headers=sign(body)) as response:
        await response.read()
        return response.status


async def test_requests_acked_before_a_kill_take_effect_once_after_the_restart(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # T0 ten minutes ahead: the vote opened twenty minutes ago, so it is open from the start
    plan = tmp_path / "plan.yml"
    plan.write_text(group_plan(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)))
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'warroom.db'}"
    fake_slack.groups["S0ONCALL"] = ["U0OC1", "U0OC2"]
    async with aiohttp.ClientSession() as session:
        bot_cm = running_bot(fake_slack, plan, database_url, tmp_path / "first.log")
        bot = await bot_cm.__aenter__()
        await fake_slack.wait_until(lambda: any("Go/No-Go vote" in str(p.get("text")) for p in fake_slack.posts()), 15)
        fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"usergroups.users.list"})
        bodies = [issue_form(fake_slack, n) for n in range(ISSUES)] + [vote_form(fake_slack, u) for u in VOTERS]
        statuses = await asyncio.gather(*(post(session, bot.base, body) for body in bodies))
        assert statuses == [200] * len(bodies)  # every request was acknowledged
        await fake_slack.wait_until(lambda: len(fake_slack.waiting) >= len(bodies), 10)
        bot.process.kill()  # SIGKILL: nothing is cleaned up
        await bot.process.wait()
        with pytest.raises(AssertionError):  # running_bot insists on a clean exit; this one was killed
            await bot_cm.__aexit__(None, None, None)
        fake_slack.hold.set()
        assert fake_slack.responses() == [], "a reply went out before the kill: the test did not catch them in flight"

        async with running_bot(fake_slack, plan, database_url, tmp_path / "second.log") as again:
            try:
                await fake_slack.wait_for("respond", len(bodies), within=20)
            except TimeoutError:
                pytest.fail(f"replies after the restart: {fake_slack.responses()}\n{again.output()}")
            await asyncio.sleep(0.5)  # anything duplicated would arrive now

    replies = [r["text"] for r in fake_slack.responses()]
    assert len(replies) == len(bodies), replies
    assert sum(1 for r in replies if re.match(r"Issue #\d+ \(high\) is posted", r)) == ISSUES
    assert sum(1 for r in replies if r.startswith("Your vote: Go")) == len(VOTERS)
    db = await build_runtime(make_settings(fake_slack, database_url))
    try:
        async with db.service.sessions() as s:
            stored = await repo.get_release(session=s, release_id="r1")
    finally:
        await db.close()
    assert stored is not None
    impacts = Counter(i.impact for i in stored.issues)
    assert impacts == Counter(f"impact number {n}" for n in range(ISSUES)), impacts
    assert sorted(b.voter for b in stored.ballots) == sorted(VOTERS)
