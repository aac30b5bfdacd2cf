"""Requests Slack did not sign go no further than a refusal: verified on the raw bytes before any parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from urllib.parse import urlencode

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.domain import PhaseStatus
from tests.conftest import SIGNING_SECRET, SlackDriver, sign
from tests.fake_slack import FakeSlack


def command_body(fake: FakeSlack, text: str = "done db-migration", user: str = "U0DBA") -> str:
    """A slash command whose response_url is the fake Slack's: a reply there would be recorded."""
    form = {
        "command": "/phase",
        "text": text,
        "user_id": user,
        "channel_id": "C0WAR",
        "channel_name": "deployment-war-room",
        "team_id": "T111",
        "trigger_id": "1.1.x",
        "response_url": fake.webhook_url,
    }
    return urlencode(form)


def button_body(fake: FakeSlack) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0DBA", "team_id": "T111"},
        "team": {"id": "T111"},
        "channel": {"id": "C0WAR"},
        "container": {"type": "message", "message_ts": "1.1", "channel_id": "C0WAR"},
        "trigger_id": "1.1.x",
        "response_url": fake.webhook_url,
        "actions": [{"action_id": "vote_go", "block_id": "b", "value": "r1", "type": "button", "action_ts": "1"}],
    }
    return urlencode({"payload": json.dumps(payload)})


def signed_bytes(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    """Slack's signature over raw bytes (for bodies that are not text)."""
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}", "Content-Type": content_type}


async def post(slack: SlackDriver, body: str | bytes, headers: dict[str, str]) -> tuple[int, str]:
    response = await slack.client.post("/slack/events", data=body, headers=headers)
    text = await response.text()
    await slack.runtime.settle()
    return response.status, text


def problems_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the bot logged about requests, leaving out aiohttp's access lines."""
    return [r for r in caplog.records if r.levelno >= logging.INFO and not r.name.startswith("aiohttp.access")]


def assert_refused_quietly(caplog: pytest.LogCaptureFixture, fake: FakeSlack, calls_before: int) -> None:
    logged = problems_logged(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].exc_info is None and "Traceback" not in caplog.text
    assert fake.calls[calls_before:] == [], "no outbound call for a refused request"


UNSIGNED_HEADERS: list[tuple[str, dict[str, str]]] = [
    ("timestamp not a number", {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"}),
    ("timestamp empty", {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=00"}),
    ("timestamp with spaces", {"X-Slack-Request-Timestamp": f" {int(time.time())} ", "X-Slack-Signature": "v0=00"}),
    ("no headers at all", {}),
    ("signature missing", {"X-Slack-Request-Timestamp": str(int(time.time()))}),
    ("signature not ASCII", {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=é"}),
    ("wrong signature", {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}),
]


@pytest.mark.parametrize(("name", "headers"), UNSIGNED_HEADERS, ids=[n for n, _ in UNSIGNED_HEADERS])
async def test_an_unsigned_command_is_401_logged_once_and_never_answered_at_its_response_url(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, name: str, headers: dict[str, str]
) -> None:
    before = len(fake_slack.calls)
    caplog.set_level(logging.INFO)
    status, _ = await post(
        slack, command_body(fake_slack), {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 401
    assert_refused_quietly(caplog, fake_slack, before)
    release = await slack.runtime.service.get("r1")
    assert release.phase("db-migration").status is PhaseStatus.PENDING  # type: ignore[union-attr]


async def test_an_unsigned_button_with_a_bad_timestamp_is_401_and_never_answered(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(fake_slack.calls)
    caplog.set_level(logging.INFO)
    headers = {"X-Slack-Request-Timestamp": "not-a-number", "X-Slack-Signature": "v0=00"}
    status, _ = await post(
        slack, button_body(fake_slack), {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 401
    assert_refused_quietly(caplog, fake_slack, before)


GARBAGE: list[tuple[str, bytes, str]] = [
    ("payload not JSON", b"payload=%7Bnot-json", "application/x-www-form-urlencoded"),
    ("bytes not UTF-8", b"command=/phase&text=\xff\xfe\xfa", "application/x-www-form-urlencoded"),
    ("broken JSON", b'{"type": "event_callback", ', "application/json"),
    ("JSON that is a list", b"[1, 2]", "application/json"),
    ("payload that is a string", b"payload=%22x%22", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize(("name", "body", "content_type"), GARBAGE, ids=[n for n, _, _ in GARBAGE])
async def test_an_unsigned_garbage_body_is_401_before_anything_parses_it(
    slack: SlackDriver,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    name: str,
    body: bytes,
    content_type: str,
) -> None:
    before = len(fake_slack.calls)
    caplog.set_level(logging.INFO)
    headers = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "1" * 64}
    status, _ = await post(slack, body, {**headers, "Content-Type": content_type})
    assert status == 401
    assert_refused_quietly(caplog, fake_slack, before)


@pytest.mark.parametrize(("name", "body", "content_type"), GARBAGE, ids=[n for n, _, _ in GARBAGE])
async def test_a_signed_garbage_body_is_400_without_a_traceback(
    slack: SlackDriver,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    name: str,
    body: bytes,
    content_type: str,
) -> None:
    before = len(fake_slack.calls)
    caplog.set_level(logging.INFO)
    status, _ = await post(slack, body, signed_bytes(body, content_type))
    assert status == 400
    assert_refused_quietly(caplog, fake_slack, before)


async def test_a_signature_is_checked_on_the_bytes_sent_whatever_charset_the_header_claims(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    """A body signed as sent is served; read as Latin-1 it would be other text under the same signature."""
    body = (command_body(fake_slack, text="list") + "&channel_name=salle-é").encode()
    headers = signed_bytes(body, "application/x-www-form-urlencoded; charset=latin-1")
    before = len(fake_slack.responses())
    status, _ = await post(slack, body, headers)
    assert status == 200
    replies = await fake_slack.wait_for("respond", before + 1)
    assert "Phases of Test Platform" in replies[-1]["text"]


async def test_a_signed_request_from_the_future_is_refused(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    before = len(fake_slack.calls)
    body = command_body(fake_slack)
    status, _ = await post(slack, body, sign(body, timestamp=int(time.time()) + 6 * 60))
    assert status == 401
    assert fake_slack.calls[before:] == []


async def test_a_signed_request_inside_the_window_is_served(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    body = command_body(fake_slack, text="list")
    before = len(fake_slack.responses())
    status, _ = await post(slack, body, sign(body, timestamp=int(time.time()) - 4 * 60))
    assert status == 200
    assert "Phases of Test Platform" in (await fake_slack.wait_for("respond", before + 1))[-1]["text"]


async def test_the_error_handler_never_answers_a_request_the_app_did_not_verify(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """Bolt's own check, reached without the HTTP front door, fails on a bad timestamp: nothing is sent."""
    before = len(fake_slack.calls)
    request = AsyncBoltRequest(
        body=command_body(fake_slack),
        headers={"x-slack-request-timestamp": "abc", "x-slack-signature": "v0=00"},
    )
    response = await slack.runtime.app.async_dispatch(request)
    await slack.runtime.settle()
    assert response.status >= 400
    assert fake_slack.calls[before:] == [], "nothing goes to the response_url of an unverified request"
