"""Shared fixtures: a controllable clock, a fake Slack, a migrated database, the real app."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Runtime, build_runtime, web_app
from bot.core.pacing import Pace
from bot.plan import Plan, parse_plan
from bot.service import LoadedPlan
from bot.settings import Settings
from tests.fake_slack import FakeSlack, slash_command_text

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SIGNING_SECRET = "test-signing-secret"
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test when the checkout has none (a user's clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here: ../shared is only present in the development workspace")
    return path


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now

    def set(self, value: datetime) -> datetime:
        self.now = value
        return value


PLAN = """
release:
  id: r1
  name: Test Platform
  version: v1.2.3
  timezone: UTC
  window: {{start: {start}, end: {end}}}
channels: {{war_room: C0WAR, announcements: C0ANN, incidents: C0INC}}
people:
  release_manager: [U0RM]
  devops_lead: [U0DEV]
  dba: [U0DBA]
  qa_lead: [U0QA]
  oncall: [U0OC1, U0OC2]
  vp_engineering: [U0VP]
  cto: [U0CTO]
components: [api, web, database]
regions: [region1, region2]
phases:
  - {{id: pre-deployment, name: Pre-Deployment, start: -2h, duration: 2h, owner: release_manager}}
  - {{id: db-migration, name: Database Migration, start: 0, duration: 30m, owner: dba}}
  - {{id: deploy-region1, name: Deploy Region 1, start: +30m, duration: 30m, owner: devops_lead, region: region1}}
  - {{id: deploy-region2, name: Deploy Region 2, start: +1h, duration: 30m, owner: devops_lead, region: region2}}
go_no_go:
  at: -30m
  deadline: -5m
  voters: [release_manager, devops_lead, dba, qa_lead]
  final_authority: vp_engineering
escalation:
  - {{level: 1, notify: [oncall], ack_within: 15m}}
  - {{level: 2, notify: [devops_lead, dba], ack_within: 15m}}
  - {{level: 3, notify: [cto]}}
status_updates: {{every: 15m, channel: war_room, from: 0, until: end}}
announcements:
  - {{id: advance, at: -7d, channel: announcements, template: advance_notice}}
  - {{id: assembly, at: -2h, channel: war_room, template: team_assembly}}
  - {{id: start, at: 0, channel: announcements, template: deployment_start}}
rollback:
  decision_point: +1h
  triggers: ["Error rate > 1% for 5+ minutes"]
"""


def plan_text(start: datetime = T0, hours: int = 4) -> str:
    end = start + timedelta(hours=hours)
    return PLAN.format(start=start.strftime("%Y-%m-%dT%H:%M:%SZ"), end=end.strftime("%Y-%m-%dT%H:%M:%SZ"))


@pytest.fixture
def plan() -> Plan:
    return parse_plan(plan_text(), "test.yml")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 - timedelta(hours=3))


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack(channels={"deployment-war-room": "C0WAR"}).start()
    yield fake
    await fake.stop()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'warroom.db'}"


def make_settings(fake: FakeSlack, database_url: str, **extra: Any) -> Settings:
    values = {
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "WARROOM_DATABASE_URL": database_url,
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


FAST_PACE = Pace(interval=0.005, burst=3, hold=0.5, home_every=0.003)
"""Slack's per-channel pace, 200 times faster: tests on a hand-moved clock never wait for it."""


@pytest.fixture
async def runtime(fake_slack: FakeSlack, database_url: str, clock: Clock) -> AsyncIterator[Runtime]:
    rt = await build_runtime(make_settings(fake_slack, database_url), clock=clock, pace=FAST_PACE)
    await rt.service.load(LoadedPlan(parse_plan(plan_text(), "test.yml"), plan_text(), "test.yml"))
    await rt.settle()
    yield rt
    await rt.close()


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers exactly as Slack computes them: v0=HMAC-SHA256(secret, 'v0:{ts}:{body}')."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def should_escape(command: str) -> bool:
    """The manifest's `should_escape` for a slash command (Slack's default is false)."""
    import yaml

    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    found = [c for c in manifest["features"]["slash_commands"] if c["command"] == command]
    return bool(found and found[0].get("should_escape", False))


def home_click(user: str, action_id: str, value: str) -> dict[str, Any]:
    """A block_actions payload as Slack sends it for a button in the App Home: the Home view and a `view`
    container, no channel, no message, no response_url."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T111"},
        "api_app_id": "A111",
        "token": "verification_token",
        "container": {"type": "view", "view_id": f"VHOME{user}"},
        "trigger_id": f"111.{user}.home",
        "team": {"id": "T111", "domain": "test-domain"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {
            "id": f"VHOME{user}",
            "team_id": "T111",
            "type": "home",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": "1700000000.abc",
            "root_view_id": f"VHOME{user}",
            "app_id": "A111",
            "external_id": "",
            "app_installed_team_id": "T111",
            "bot_id": "BBOT",
        },
        "actions": [
            {"action_id": action_id, "block_id": "b", "value": value, "type": "button", "action_ts": "1700000000.1"}
        ],
    }


async def home_answer(fake: FakeSlack, user: str, text: str) -> None:
    """The answer to a click in the App Home is the line on top of the Home published next: wait for it."""
    await fake.wait_until(lambda: any(text in json.dumps(v, ensure_ascii=False) for v in fake.homes(user)))


class SlackDriver:
    """Sends signed requests shaped like ../shared/slack/fixtures to the app's HTTP endpoint."""

    def __init__(self, client: TestClient, fake: FakeSlack, runtime: Runtime) -> None:
        self.client = client
        self.fake = fake
        self.runtime = runtime
        self._triggers = itertools.count(1)
        self._sent_triggers: set[str] = set()

    def _fresh_trigger(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Slack gives every interaction its own trigger_id (so no two requests have the same signature)."""
        trigger = str(payload.get("trigger_id") or "")
        if trigger and trigger in self._sent_triggers:
            payload = {**payload, "trigger_id": f"{trigger}.{next(self._triggers)}"}
        self._sent_triggers.add(str(payload.get("trigger_id") or ""))
        return payload

    async def command(
        self,
        command: str,
        text: str,
        *,
        user: str = "U0RM",
        channel: str = "C0WAR",
        channel_name: str = "deployment-war-room",
        settle: bool = True,
    ) -> dict[str, Any]:
        """Run a slash command; return the ephemeral reply Slack's response_url received.

        `text` is what the person typed; it is sent as Slack would, given the command's `should_escape`
        in manifest.yml (see `slash_command_text`)."""
        before = len(self.fake.responses())
        text = slash_command_text(
            text,
            should_escape=should_escape(command),
            members=self.fake.members,
            channels=self.fake.channels,
            groups=self.fake.handles,
        )
        form = {
            "token": "verification_token",
            "team_id": "T111",
            "team_domain": "test-domain",
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A111",
            "response_url": self.fake.webhook_url,
            "trigger_id": f"111.{next(self._triggers)}.xxx",
        }
        body = urlencode(form)
        response = await self.client.post("/slack/events", data=body, headers=sign(body))
        assert response.status == 200, await response.text()
        replies = await self.fake.wait_for("respond", before + 1)
        if settle:
            await self.runtime.settle()
        return replies[before]

    async def action(self, payload: dict[str, Any], *, settle: bool = True) -> Any:
        body = urlencode({"payload": json.dumps(self._fresh_trigger(payload))})
        response = await self.client.post("/slack/events", data=body, headers=sign(body))
        assert response.status == 200, await response.text()
        text = await response.text()
        if settle:
            await self.runtime.settle()
        return json.loads(text) if text.startswith("{") else text


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackDriver]:
    server = TestServer(web_app(runtime, serve_slack=True))
    client = TestClient(server)
    await client.start_server()
    yield SlackDriver(client, fake_slack, runtime)
    await client.close()


def postgres_url() -> str | None:
    return os.environ.get("WARROOM_TEST_POSTGRES_URL")


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """The URL of a PostgreSQL database of its own, dropped afterwards (skips the test without a server)."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    url = postgres_url()
    if not url:
        pytest.skip("WARROOM_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    name = f"warroom_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database of its own (separate processes cannot share a per-test schema setting)."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_database(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[str]:
    """Each test runs on SQLite and on PostgreSQL (a fresh database; skipped without a server)."""
    if request.param == "sqlite":
        yield database_url
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def postgres_schema() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A PostgreSQL URL and engine arguments that confine a test to a fresh schema of its own."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    url = postgres_url()
    if not url:
        pytest.skip("WARROOM_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield url, {"connect_args": {"server_settings": {"search_path": schema}}}
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
