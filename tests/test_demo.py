"""The first run: the demo plan runs as written, and one channel for everything gets each post once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Runtime, build_runtime, web_app
from bot.plan import parse_plan
from bot.service import LoadedPlan
from storage import repo
from storage.db import create_engine, sessionmaker
from tests.bot_process import running_bot
from tests.conftest import FAST_PACE, ROOT, T0, Clock, SlackDriver, make_settings, plan_text
from tests.fake_slack import FakeSlack

ONE_CHANNEL = plan_text().replace(
    "channels: {war_room: C0WAR, announcements: C0ANN, incidents: C0INC}",
    "channels: {war_room: C0WAR, announcements: C0WAR, incidents: C0WAR}",
)


@pytest.fixture
async def one_channel(fake_slack: FakeSlack, database_url: str, clock: Clock) -> AsyncIterator[SlackDriver]:
    runtime: Runtime = await build_runtime(make_settings(fake_slack, database_url), clock=clock, pace=FAST_PACE)
    await runtime.service.load(LoadedPlan(parse_plan(ONE_CHANNEL, "one.yml"), ONE_CHANNEL, "one.yml"))
    await runtime.settle()
    client = TestClient(TestServer(web_app(runtime, serve_slack=True)))
    await client.start_server()
    yield SlackDriver(client, fake_slack, runtime)
    await client.close()
    await runtime.close()


async def test_a_decision_and_an_issue_are_posted_once_when_all_channels_are_one(
    one_channel: SlackDriver, clock: Clock
) -> None:
    clock.set(T0 - timedelta(minutes=20))
    reply = await one_channel.command("/gonogo", "decide go all checks green", user="U0VP")
    assert "Go" in reply["text"]
    await one_channel.fake.wait_until(lambda: bool(one_channel.fake.posts("C0WAR")))
    decisions = [p for p in one_channel.fake.posts("C0WAR") if "decision" in str(p.get("metadata"))]
    assert len(decisions) == 1, [p.get("metadata") for p in one_channel.fake.posts("C0WAR")]

    clock.set(T0 + timedelta(minutes=5))
    await one_channel.command("/issue", "critical api region1 logins fail | pool exhausted", user="U0QA")
    cards = [p for p in one_channel.fake.posts("C0WAR") if "ISSUE DETECTED" in str(p.get("blocks")).upper()]
    assert len(cards) == 1, [p.get("metadata") for p in one_channel.fake.posts("C0WAR")]


DEMO = ROOT / "examples" / "demo.yml"


async def test_the_demo_runs_as_written_with_its_window_just_ahead_and_kept_across_a_restart(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    options = ("--demo", "--demo-user", "U0ME")
    starts = []
    for run in (1, 2):
        loaded_at = datetime.now(UTC)
        async with running_bot(fake_slack, DEMO, database_url, tmp_path / f"demo{run}.log", options=options) as bot:
            await bot.wait_for_output("demo: ")
        engine = create_engine(database_url)
        async with sessionmaker(engine)() as session:
            release = await repo.get_release(session=session, release_id="demo")
            timeline = await repo.get_timeline(session=session, release_id="demo")
        await engine.dispose()
        assert release is not None
        starts.append(release.window_start)
        if run == 1:
            assert loaded_at + timedelta(minutes=14) < release.window_start < loaded_at + timedelta(minutes=17)
            assert release.window_end - release.window_start == timedelta(hours=1)
        assert "you (U0ME) hold every role" in bot.output()
    assert starts[0] == starts[1]  # a restart keeps the date the demo got when first loaded
    assert not [e for e in timeline if e.kind in {"message.skipped", "release.plan_updated"}]
    assert not [c for c in fake_slack.of("chat.postMessage") if "U0DEMO" in str(c)]


def test_the_demo_plan_passes_check_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["check", str(DEMO)]) == 0
    assert ": ok" in capsys.readouterr().out
