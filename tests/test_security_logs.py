"""Logs at DEBUG, through a whole scenario, never contain a token, the signing secret or a routing key."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.plan import parse_plan
from bot.redact import Redactor
from bot.service import LoadedPlan
from tests.bot_process import running_bot
from tests.conftest import SIGNING_SECRET, T0, Clock, SlackDriver
from tests.fake_slack import FakeSlack
from tests.test_pagerduty import ROUTING_KEY, FakePagerDuty, with_pagerduty

BOT_TOKEN = "xoxb-test-token"
"""What conftest's make_settings gives the bot."""


@pytest.fixture
async def pager() -> AsyncIterator[FakePagerDuty]:
    fake = await FakePagerDuty().start()
    yield fake
    await fake.stop()


async def test_a_whole_scenario_at_debug_logs_no_secret(
    slack: SlackDriver, fake_slack: FakeSlack, pager: FakePagerDuty, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    text = with_pagerduty(pager.url)
    await slack.runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await slack.runtime.settle()
    clock.set(T0 - timedelta(minutes=35))
    await slack.command("/phase", "start pre-deployment", user="U0RM")
    await slack.command("/gonogo", "open", user="U0RM")
    for user in ("U0RM", "U0DEV", "U0DBA", "U0QA"):
        await slack.command("/gonogo", "go", user=user)
    await slack.runtime.dispatcher.run_due()
    clock.set(T0 + timedelta(minutes=1))
    await slack.command("/issue", "critical api region1 checkout fails | upstream 503", user="U0DEV")
    await slack.command("/page", "2 payments failing", user="U0RM")
    await slack.runtime.settle()
    await slack.command("/page", "ack 1", user="U0OC1")
    await slack.command("/issue", "resolve 1 fixed forward", user="U0DEV")
    await slack.runtime.settle()
    await slack.runtime.dispatcher.run_due()
    assert {"trigger", "acknowledge"} <= set(pager.actions()), "the scenario reached PagerDuty"
    assert fake_slack.posts("C0WAR"), "and Slack"
    records = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert records, "DEBUG was on"
    for secret in (BOT_TOKEN, SIGNING_SECRET, ROUTING_KEY):
        assert secret not in caplog.text, f"{secret[:6]}… was logged"


APP_TOKEN = "xapp-1-A111-secret-app-token"
PROCESS_BOT_TOKEN = "xoxb-e2e"
"""What tests/bot_process.py gives the real program."""


async def test_warroom_run_at_debug_in_socket_mode_logs_no_secret(
    fake_slack: FakeSlack, pager: FakePagerDuty, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text(with_pagerduty(pager.url))
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'warroom.db'}"
    env = {"SLACK_APP_TOKEN": APP_TOKEN, "WARROOM_LOG_LEVEL": "DEBUG"}
    async with running_bot(fake_slack, plan, database_url, tmp_path / "warroom.log", extra_env=env) as bot:
        await fake_slack.wait_for("socket.connected", within=15)
        for n, (user, text) in enumerate([("U0RM", "list"), ("U0RM", "2 payments failing"), ("U0DEV", "ack 1")]):
            command = "/phase" if text == "list" else "/page"
            payload = {
                "command": command,
                "text": text,
                "user_id": user,
                "channel_id": "C0WAR",
                "channel_name": "deployment-war-room",
                "team_id": "T111",
                "trigger_id": f"1.{n}.x",
                "response_url": fake_slack.webhook_url,
            }
            await fake_slack.send_envelope(f"e{n}", "slash_commands", payload)
            await fake_slack.wait_for("respond", n + 1, within=15)
        async with asyncio.timeout(15):
            while set(pager.actions()) < {"trigger", "acknowledge"}:  # noqa: ASYNC110 - another process sends them
                await asyncio.sleep(0.1)
    output = bot.output()
    assert "DEBUG" in output and "Socket Mode" in output
    assert [a["envelope_id"] for a in fake_slack.of("socket.ack")] == ["e0", "e1", "e2"]
    for secret in (APP_TOKEN, PROCESS_BOT_TOKEN, SIGNING_SECRET, ROUTING_KEY):
        assert secret not in output, f"{secret[:6]}… was logged"


def test_the_redactor_scrubs_messages_arguments_and_tracebacks() -> None:
    redactor = Redactor()
    redactor.add("xoxb-unit-secret", "xoxb-unit-secret-longer", None, "abc")
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "token %s and %s", ("xoxb-unit-secret-longer", "abc"), None
    )
    redactor._scrub_record(record)
    assert record.getMessage() == "token (redacted) and abc", "longest first; too short to be a secret"
    try:
        raise RuntimeError("auth failed for xoxb-unit-secret")
    except RuntimeError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    redactor._scrub_record(failed)
    text = logging.Formatter().format(failed)
    assert "RuntimeError: auth failed for (redacted)" in text and "xoxb-unit-secret" not in text
    broken = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    redactor._scrub_record(broken)  # left for the handler to report, as logging always does
    assert broken.msg == "%d"
