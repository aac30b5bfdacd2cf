"""Requests Slack did not sign go no further than a refusal: verified on the raw bytes before any parsing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body

from bot.core.signature import expected_signature, refusal
from bot.core.slack_request import body_problem
from bot.domain import SYSTEM, Actor, PhaseStatus, ReleaseStatus
from bot.ids import ActionId, CallbackId
from bot.permissions import ANYONE, IN_PLAN, Action, may, required
from bot.plan import Plan, parse_plan
from bot.service import LoadedPlan
from tests.bot_process import free_port
from tests.conftest import ROOT, SIGNING_SECRET, T0, Clock, SlackDriver, plan_text, shared_path, sign
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


MALFORMED_STATES = {
    "element not an object": {"reason": {"reason": "go"}, "rationale": {"rationale": "go"}, "impact": {"impact": "x"}},
    "block not an object": {"reason": "go", "rationale": "go", "impact": "x", "note": "x"},
    "value a list": {b: {b: {"type": "plain_text_input", "value": ["x"]}} for b in ("reason", "rationale", "note")},
    "value an object": {b: {b: {"type": "plain_text_input", "value": {"a": 1}}} for b in ("impact", "error", "note")},
    "option not text": {"severity": {"severity": {"type": "static_select", "selected_option": {"value": 3}}}},
    "values a list": ["reason"],
}


@pytest.mark.parametrize("callback_id", [str(c) for c in CallbackId])
@pytest.mark.parametrize("state", list(MALFORMED_STATES.values()), ids=list(MALFORMED_STATES))
async def test_a_signed_form_whose_values_are_malformed_is_refused_in_the_form_without_a_traceback(
    slack: SlackDriver, caplog: pytest.LogCaptureFixture, callback_id: str, state: object
) -> None:
    caplog.set_level(logging.INFO)
    meta = json.dumps({"release": "r1", "issue": 1, "channel": "C0WAR"})
    payload = {
        "type": "view_submission",
        "team": {"id": "T111"},
        "user": {"id": "U0VP", "team_id": "T111"},
        "api_app_id": "A111",
        "trigger_id": "1.form.x",
        "view": {"id": "V1", "type": "modal", "callback_id": callback_id, "private_metadata": meta,
                 "state": {"values": state}},
    }  # fmt: skip
    before = await slack.runtime.service.get("r1")
    body = urlencode({"payload": json.dumps(payload)})
    status, _ = await post(slack, body, sign(body))
    await listeners_finished()
    assert status < 500
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text
    assert await slack.runtime.service.get("r1") == before, "nothing changed"


BOLT_INDEXES = {
    "a form without its view's type": {"type": "view_submission", "view": {"callback_id": "issue_modal"}},
    "a form closed without its view's type": {"type": "view_closed", "view": {"callback_id": "issue_modal"}},
    "a workflow step saved without the step": {
        "type": "view_submission",
        "view": {"callback_id": "issue_modal", "type": "workflow_step"},
    },
    "a workflow step edited without the step": {"type": "workflow_step_edit", "callback_id": "x"},
    "a Home tab opened by nobody": {"type": "event_callback", "event": {"type": "app_home_opened", "tab": "home"}},
    "a click on no action": {"type": "block_actions", "actions": [{}]},
    "a click whose value is a list": {
        "type": "block_actions",
        "actions": [{"action_id": "issue_resolve", "value": []}],
    },
    "a click whose value is an object": {"type": "block_actions", "actions": [{"action_id": "page_ack", "value": {}}]},
}


@pytest.mark.parametrize("payload", list(BOLT_INDEXES.values()), ids=list(BOLT_INDEXES))
async def test_a_signed_payload_missing_what_bolt_or_a_listener_reads_is_400_not_a_5xx_or_a_traceback(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, payload: dict[str, object]
) -> None:
    """Bolt reads these keys before any listener (missing, it raises outside the app), the Home tab its user."""
    caplog.set_level(logging.INFO)
    before = len(fake_slack.calls)
    full = {"user": {"id": "U0RM", "team_id": "T111"}, "team": {"id": "T111"}, "trigger_id": "1.1.x", **payload}
    body = urlencode({"payload": json.dumps(full)})
    status, text = await post(slack, body, sign(body))
    assert status == 400, text
    assert_refused_quietly(caplog, fake_slack, before)


@pytest.mark.parametrize(
    "extra",
    [{"user_id": "", "user": "U0RM"}, {"channel_id": "", "channel": "C0WAR"}, {"channel_id": "", "container": {}}],
    ids=["user as an id", "channel as an id", "an empty container"],
)
async def test_a_signed_command_naming_its_sender_or_channel_another_way_is_never_a_5xx(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, extra: dict[str, object]
) -> None:
    """Who sent a request and from where is read before any listener: a shape Slack does not send is refused."""
    caplog.set_level(logging.INFO)
    body = urlencode({**dict(parse_qsl(command_body(fake_slack, "list"))), **extra})
    status, _ = await post(slack, body, sign(body))
    await listeners_finished()
    assert status < 500
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


# --- the same, for arbitrary requests -----------------------------------------------------------------------

SLACK_KEYS = (
    "type",
    "command",
    "text",
    "payload",
    "user",
    "user_id",
    "team",
    "team_id",
    "enterprise",
    "channel",
    "channel_id",
    "actions",
    "view",
    "event",
    "response_url",
    "trigger_id",
    "container",
    "authorizations",
    "is_enterprise_install",
    "challenge",
    "token",
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from(["/phase", "block_actions"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(SLACK_KEYS), inner, max_size=4),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(st.sampled_from(SLACK_KEYS) | st.text(max_size=8), JSON_VALUES, max_size=6)
FORM_VALUES = st.text(max_size=30) | JSON_VALUES.map(json.dumps) | st.sampled_from(["/phase", "/release", "list"])
RESPONSE_URL = "RESPONSE_URL"
"""Stands for the fake Slack's response_url in generated bodies; replaced before the body is signed."""
SLASH_COMMANDS = st.builds(
    lambda command, text, user, extra: urlencode(
        {
            "command": command,
            "text": text,
            "user_id": user,
            "channel_id": "C0WAR",
            "channel_name": "deployment-war-room",
            "team_id": "T111",
            "trigger_id": "1.1.x",
            "response_url": RESPONSE_URL,
            **extra,
        }
    ).encode(),
    st.sampled_from(["/release", "/phase", "/issue", "/page", "/gonogo", "/unknown"]),
    st.text(max_size=40) | st.sampled_from(["list", "status", "start db-migration", "ack", "open", "go"]),
    st.sampled_from(["U0RM", "U0DBA", "U0NOBODY", ""]),
    st.dictionaries(st.sampled_from(["user", "channel", "container", "channel_id", "team"]), FORM_VALUES, max_size=2),
)
BUTTONS = st.builds(
    lambda action_id, value, user: urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "user": {"id": user, "team_id": "T111"},
                    "team": {"id": "T111"},
                    "channel": {"id": "C0WAR"},
                    "trigger_id": "1.1.x",
                    "response_url": RESPONSE_URL,
                    "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button"}],
                }
            )
        }
    ).encode(),
    st.sampled_from([str(a) for a in ActionId]) | st.text(max_size=10),
    st.text(max_size=20) | st.sampled_from(["r1", "r1#1", "r1#2", "1", "r1#x"]),
    st.sampled_from(["U0RM", "U0VP", "U0NOBODY"]),
)
FORMS = st.builds(
    lambda callback_id, meta, values, user: urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "view_submission",
                    "user": {"id": user, "team_id": "T111"},
                    "team": {"id": "T111"},
                    "trigger_id": "1.1.x",
                    "view": {"callback_id": callback_id, "private_metadata": meta, "state": {"values": values}},
                }
            )
        }
    ).encode(),
    st.sampled_from([str(c) for c in CallbackId]) | st.text(max_size=10),
    st.text(max_size=20) | st.sampled_from(['{"release": "r1", "issue": 1}', '{"release": "r1", "issue": "1"}', "[]"]),
    st.dictionaries(st.sampled_from(["impact", "error", "severity", "note", "reason", "rationale"]), JSON_VALUES),
    st.sampled_from(["U0RM", "U0VP", "U0NOBODY"]),
)
GARBAGE_BODIES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    JSON_OBJECTS.map(lambda o: json.dumps(o).encode()),
    JSON_VALUES.map(lambda o: json.dumps(o).encode()),
    st.dictionaries(st.sampled_from(SLACK_KEYS), FORM_VALUES, max_size=6).map(lambda f: urlencode(f).encode()),
    JSON_OBJECTS.map(lambda o: urlencode({"payload": json.dumps(o)}).encode()),
)
BODIES = st.booleans().flatmap(
    lambda slack_like: st.one_of(SLASH_COMMANDS, BUTTONS, FORMS) if slack_like else GARBAGE_BODIES
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "multipart/form-data; boundary=x",
    ]
) | HEADER_TEXT.map(str.strip)
TIMESTAMPS = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.integers(-400, 400).map(lambda d: str(int(time.time()) + d)),
    HEADER_TEXT,
)
SIGNATURES = st.one_of(HEADER_TEXT, st.binary(min_size=32, max_size=32).map(lambda b: "v0=" + b.hex()))


@st.composite
def unsigned_headers(draw: st.DrawFn) -> dict[str, str]:
    """Any headers a sender without the secret could send: no signature, a made-up one, any timestamp."""
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["Content-Type"] = draw(CONTENT_TYPES)
    if draw(st.booleans()):
        headers["X-Slack-Request-Timestamp"] = draw(TIMESTAMPS)
    if draw(st.booleans()):
        headers["X-Slack-Signature"] = draw(SIGNATURES)
    others = st.sampled_from(["X-Slack-Retry-Num", "X-Forwarded-For", "Content-Encoding", "X-Foo"])
    headers.update(draw(st.dictionaries(others, HEADER_TEXT, max_size=2)))
    return headers


def with_response_url(body: bytes, fake: FakeSlack) -> bytes:
    return body.replace(RESPONSE_URL.encode(), quote(fake.webhook_url, safe="").encode())


async def listeners_finished() -> None:
    """Wait for the listeners Bolt still runs after their ack (it starts them as tasks of this name)."""
    running = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").endswith("run_ack_function_asynchronously")
    ]
    await asyncio.wait_for(asyncio.gather(*running), 10)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@FUZZ
@given(body=BODIES, headers=unsigned_headers())
async def test_an_arbitrary_unsigned_request_is_401_logged_once_and_calls_nothing(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, body: bytes, headers: dict[str, str]
) -> None:
    caplog.clear()
    caplog.set_level(logging.INFO)
    before = len(fake_slack.calls)
    status, _ = await post(slack, with_response_url(body, fake_slack), headers)
    assert status == 401
    assert_refused_quietly(caplog, fake_slack, before)


@FUZZ
@given(body=BODIES, content_type=st.none() | CONTENT_TYPES)
async def test_an_arbitrary_signed_request_is_never_a_5xx_or_a_traceback(
    slack: SlackDriver,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str | None,
) -> None:
    caplog.clear()
    caplog.set_level(logging.INFO)
    body = with_response_url(body, fake_slack)
    headers = signed_bytes(body, content_type or "application/x-www-form-urlencoded")
    status, _ = await post(slack, body, headers)
    await listeners_finished()
    await slack.runtime.settle()
    event(f"answered {status}")
    assert status < 500
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()], caplog.text


# --- the rules alone ----------------------------------------------------------------------------------------

NOW = 1_800_000_000
GOOD_TS = str(NOW)
GOOD_SIG = expected_signature(b"s3cret", GOOD_TS, b"a=1")


@pytest.mark.parametrize(
    ("secret", "timestamp", "signature", "body", "reason"),
    [
        (b"s3cret", GOOD_TS, GOOD_SIG, b"a=1", None),
        (b"s3cret", str(NOW - 300), expected_signature(b"s3cret", str(NOW - 300), b"a=1"), b"a=1", None),
        (b"s3cret", str(NOW - 301), expected_signature(b"s3cret", str(NOW - 301), b"a=1"), b"a=1", "5 minutes"),
        (b"s3cret", str(NOW + 301), expected_signature(b"s3cret", str(NOW + 301), b"a=1"), b"a=1", "5 minutes"),
        (b"s3cret", GOOD_TS, GOOD_SIG, b"a=2", "does not match"),
        (b"other", GOOD_TS, GOOD_SIG, b"a=1", "does not match"),
        (b"", GOOD_TS, GOOD_SIG, b"a=1", "no signing secret"),
        (b"s3cret", None, GOOD_SIG, b"a=1", "X-Slack-Request-Timestamp"),
        (b"s3cret", "1e9", GOOD_SIG, b"a=1", "not a number"),
        (b"s3cret", "+" + GOOD_TS, GOOD_SIG, b"a=1", "not a number"),
        (b"s3cret", "١٢٣", GOOD_SIG, b"a=1", "not a number"),
        (b"s3cret", "9" * 5000, GOOD_SIG, b"a=1", "not a number"),
        (b"s3cret", GOOD_TS, None, b"a=1", "X-Slack-Signature"),
        (b"s3cret", GOOD_TS, GOOD_SIG.upper(), b"a=1", "does not match"),
        (b"s3cret", GOOD_TS, GOOD_SIG + "\udcff", b"a=1", "does not match"),
    ],
)
def test_signature_refusals(
    secret: bytes, timestamp: str | None, signature: str | None, body: bytes, reason: str | None
) -> None:
    got = refusal(secret=secret, timestamp=timestamp, signature=signature, body=body, now=NOW)
    assert got is None if reason is None else (got is not None and reason in got)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"command": "/phase", "text": "", "user_id": "U1", "channel_id": "C1"}, None),
        ({"command": "/phase", "user_id": "U1", "channel_id": "C1"}, "without text"),
        ({"command": 5}, "command is not a string"),
        ({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "a"}]}, None),
        ({"type": "block_actions", "user": {"id": "U1"}, "actions": []}, "without actions"),
        ({"type": "block_actions", "user": "U1", "actions": [{}]}, "user is not an object"),
        ({"type": "block_actions", "user": {}, "actions": [{}]}, "without user.id"),
        ({"type": "block_actions", "user": {"id": "U1"}, "actions": ["x"]}, "not a list of objects"),
        ({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": 1}]}, "actions[0].action_id is"),
        ({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "a", "value": 1}]}, "value is not"),
        ({"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "c", "type": "modal"}}, None),
        ({"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "c"}}, "without view.type"),
        ({"type": "view_closed", "user": {"id": "U1"}, "view": {"callback_id": "c"}}, "without view.type"),
        ({"type": "view_submission", "user": {"id": "U1"}, "view": "x"}, "view is not an object"),
        ({"type": "event_callback", "event": {"type": "app_home_opened", "user": "U1"}}, None),
        ({"type": "event_callback", "event": {"type": "x", "channel": 5}}, "event.channel is neither"),
        ({"type": "event_callback", "event": {"type": "app_home_opened"}}, "without event.user"),
        ({"team": 5}, "team is neither"),
        ({"command": "/phase", "text": "", "user_id": "", "channel_id": "C1", "user": "U1"}, "user is not an object"),
        ({"type": "block_actions", "user": {"id": "U1"}, "channel": "C1", "actions": [{}]}, "channel is not an"),
        ({"enterprise": None, "team": {"id": "T1", "enterprise_id": None}}, None),
        ({"authorizations": [{"team": 1}]}, "authorizations[0].team is neither"),
        (
            {
                "type": "block_actions",
                "user": {"id": "U1"},
                "actions": [{"action_id": "a", "text": {"type": "plain_text"}}],
            },
            None,
        ),
        ([1, 2], "not an object"),
    ],
)
def test_request_shape_problems(body: object, reason: str | None) -> None:
    got = body_problem(body)
    assert got is None if reason is None else (got is not None and reason in got)


@pytest.mark.parametrize(
    "name",
    [
        "block_actions.payload.json",
        "block_actions_with_message.payload.json",
        "app_mention_event.payload.json",
        "slash_command.form-urlencoded.txt",
        "block_actions.form-urlencoded.txt",
    ],
)
def test_every_request_slack_sends_has_the_shape_it_is_checked_for(name: str) -> None:
    raw = shared_path("slack", "fixtures", name).read_text().strip()
    content_type = "application/json" if name.endswith(".json") else "application/x-www-form-urlencoded"
    assert body_problem(parse_body(raw, content_type)) is None


# --- no secret, no start ------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "   ", "\t", "abc123\n"], ids=["empty", "spaces", "tab", "line break"])
def test_http_mode_with_a_blank_signing_secret_does_not_start(tmp_path: Path, secret: str) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))},
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": secret,
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "WARROOM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'warroom.db'}",
        "WARROOM_HOST": "127.0.0.1",
        "WARROOM_PORT": str(free_port()),
    }
    # a build that starts anyway serves until killed: the timeout turns that into a failure
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", str(plan)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=20,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "SLACK_SIGNING_SECRET is blank" in result.stderr or "SLACK_SIGNING_SECRET has spaces" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "warroom.db").exists(), "nothing was started"


@pytest.mark.parametrize("member", ["S0ALLSTAFF", "alice", "<@U0ME|me>"])
def test_demo_user_must_be_one_member_id_or_the_demo_does_not_start(tmp_path: Path, member: str) -> None:
    """`--demo-user` gives every role: a user group would give it to all its members, a typo to nobody."""
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))},
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "WARROOM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'warroom.db'}",
        "WARROOM_HOST": "127.0.0.1",
        "WARROOM_PORT": str(free_port()),
    }
    # a build that starts anyway serves until killed: the timeout turns that into a failure
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--demo", "--demo-user", member, str(plan)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=20,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--demo-user" in result.stderr and "member ID" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "warroom.db").exists(), "nothing was started"


# --- no back door -------------------------------------------------------------------------------------------

RESERVED = ["system", "warroom", "anyone", "everyone", "here", "channel"]


@pytest.mark.parametrize("name", RESERVED)
def test_check_refuses_a_reserved_role_name_with_file_and_line(tmp_path: Path, name: str) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text().replace("  cto: [U0CTO]\n", f"  cto: [U0CTO]\n  {name}: [U0SYS]\n"))
    line = next(n for n, text in enumerate(plan.read_text().splitlines(), 1) if text.startswith(f"  {name}:"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", str(plan)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"{plan}:{line}: ") and f"'{name}'" in result.stderr and "reserved" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def plan_with_a_system_role() -> Plan:
    """A plan whose people hold a role named `system`, as a plan that got past an older check would."""
    checked = parse_plan(plan_text(), "test.yml")
    plan = checked.model_copy(update={"people": {**checked.people, "system": ["U0SYS"]}})
    assert plan.role_of_person["U0SYS"] == frozenset({"system"})
    return plan


@pytest.mark.parametrize(
    "action", [a for a in Action if required(plan_with_a_system_role(), a) not in (ANYONE, IN_PLAN)]
)
def test_a_role_named_system_grants_nothing_a_role_needs(action: Action) -> None:
    plan = plan_with_a_system_role()
    assert not may(plan, Actor("U0SYS", frozenset({"system"})), action)


def test_the_timer_actor_holds_no_role_a_plan_could_name() -> None:
    assert SYSTEM.roles == frozenset() and SYSTEM.scheduled
    assert not Actor("warroom", frozenset({"system"})).scheduled


async def test_a_member_of_a_system_role_cannot_vote_decide_start_or_abort_over_http(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    plan = plan_with_a_system_role()
    await slack.runtime.service.load(LoadedPlan(plan, plan_text(), "test.yml"))
    clock.set(T0 - timedelta(minutes=35))
    await slack.command("/gonogo", "open", user="U0RM")
    attempts = {
        ("/gonogo", "go"): "Only the",
        ("/gonogo", "decide go we are ready"): "Only the vp engineering may decide",
        ("/release", "start --force no vote needed"): "Only the",
        ("/release", "abort because I can"): "Only the",
        ("/release", "rollback because I can"): "Only the",
    }
    for (command, text), refusal_text in attempts.items():
        reply = await slack.command(command, text, user="U0SYS")
        assert refusal_text in reply["text"], (command, text, reply["text"])
    click = {
        "type": "block_actions",
        "user": {"id": "U0SYS", "team_id": "T111"},
        "team": {"id": "T111"},
        "channel": {"id": "C0WAR"},
        "container": {"type": "message", "message_ts": "1.1", "channel_id": "C0WAR"},
        "trigger_id": "1.1.x",
        "response_url": fake_slack.webhook_url,
        "actions": [{"action_id": "vote_go", "block_id": "b", "value": "r1", "type": "button", "action_ts": "1"}],
    }
    before = len(fake_slack.responses())
    await slack.action(click)
    assert "Only the" in (await fake_slack.wait_for("respond", before + 1))[-1]["text"]
    current = await slack.runtime.service.get("r1")
    assert current is not None
    assert current.ballots == () and current.decisions == () and current.status is ReleaseStatus.SCHEDULED
