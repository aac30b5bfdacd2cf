"""The real program: `warroom run` in HTTP mode as a subprocess against the fake Slack; Socket Mode's
client reaching SLACK_API_URL."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError

from bot.app import build_runtime, socket_mode_handler
from tests.bot_process import free_port, running_bot
from tests.conftest import T0, make_settings, plan_text, sign
from tests.fake_slack import FakeSlack


async def test_warroom_run_serves_slack_in_http_mode(fake_slack: FakeSlack, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}"
    async with (
        running_bot(fake_slack, plan, database_url, tmp_path / "warroom.log") as bot,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"{bot.base}/healthz") as response:
            assert (await response.json())["releases"] == ["r1"]
        form = {
            "command": "/phase", "text": "done db-migration from the real program", "user_id": "U0DBA",
            "channel_id": "C0WAR", "channel_name": "war", "team_id": "T111",
            "response_url": fake_slack.webhook_url, "trigger_id": "1",
        }  # fmt: skip
        body = urlencode(form)
        async with session.post(f"{bot.base}/slack/events", data=body, headers=sign(body)) as response:
            assert response.status == 200
        reply = (await fake_slack.wait_for("respond", 1, within=10))[0]
        assert "Database Migration: done" in reply["text"]
        posts = await fake_slack.wait_for("chat.postMessage", 1, within=10)
        assert any("from the real program" in str(p.get("blocks")) for p in posts)
        async with session.get(f"{bot.base}/metrics") as response:
            assert 'warroom_commands_total{command="/phase",result="received"} 1.0' in await response.text()


async def test_socket_mode_client_uses_slack_api_url(fake_slack: FakeSlack, database_url: str) -> None:
    fake_slack.fail["apps.connections.open"] = [(200, {"ok": False, "error": "invalid_auth"})]
    settings = make_settings(fake_slack, database_url, SLACK_APP_TOKEN="xapp-test", WARROOM_PORT=str(free_port()))
    runtime = await build_runtime(settings)
    assert settings.socket_mode
    handler = socket_mode_handler(runtime)
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await handler.client.issue_new_wss_url()  # what connecting does first: apps.connections.open
    assert fake_slack.of("apps.connections.open:failed"), "Socket Mode did not call the configured API URL"
    await runtime.close()


async def test_sighup_reloads_the_plan_and_refuses_a_broken_one(fake_slack: FakeSlack, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}"
    async with running_bot(fake_slack, plan, database_url, tmp_path / "warroom.log") as bot:
        broken = plan_text().replace("owner: dba", "owner: nobody_role")
        plan.write_text(broken)
        bot.process.send_signal(signal.SIGHUP)
        await bot.wait_for_output("plan reload refused")
        assert "plan.yml:" in bot.output() and "nobody_role" in bot.output()

        due_seconds_ago = int((T0 - datetime.now(UTC)).total_seconds()) + 5
        added = f'  - {{id: hup, at: -{due_seconds_ago}s, channel: war_room, text: "Added by a reload"}}\n'
        plan.write_text(plan_text().replace("announcements:\n", "announcements:\n" + added))
        bot.process.send_signal(signal.SIGHUP)
        await fake_slack.wait_until(lambda: any(p.get("text") == "Added by a reload" for p in fake_slack.posts()), 15)
        assert "plans reloaded: r1" in bot.output()
        assert bot.process.returncode is None
