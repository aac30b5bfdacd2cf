"""Text people type is data: it never becomes layout, a broadcast or a live group mention (SPEC §8).

Every attack goes in from the outside (a signed slash command, a button and its modal) and is checked on
what the fake Slack received.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Runtime, build_runtime, web_app
from bot.core.text import slack_escape
from bot.plan import parse_plan
from bot.rules import release_from_plan
from bot.service import LoadedPlan
from messages import blocks as bk
from messages.issue_cards import issue_modal
from messages.render import render
from tests.conftest import T0, Clock, SlackDriver, make_settings, plan_text, should_escape, sign
from tests.fake_slack import FakeSlack
from tests.test_gonogo_handlers import click, open_vote, settle, submission

FORGED = "ok\n# ✅ RELEASE COMPLETE\n---\n~ approved by the CTO"


def forged_layout(posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks a person's text turned into structure: a forged header, divider or context line."""
    found = []
    for post in posts:
        blocks = post.get("blocks") or []
        for i, block in enumerate(blocks):
            text = json.dumps(block)
            header = block["type"] == "header" and "RELEASE COMPLETE" in text
            context = block["type"] == "context" and "approved by the CTO" in text
            divider = block["type"] == "divider" and i > 0 and "RELEASE COMPLETE" in json.dumps(blocks[i - 1])
            if header or context or divider:
                found.append(block)
    return found


def shown_as_text(posts: list[dict[str, Any]]) -> bool:
    """The forged lines arrived, as text inside a section."""
    return any(
        b["type"] == "section" and "RELEASE COMPLETE" in b.get("text", {}).get("text", "") and "approved" in str(b)
        for p in posts
        for b in p.get("blocks") or []
    )


async def start_release(slack: SlackDriver) -> None:
    reply = await slack.command("/release", "start --force testing the war room", user="U0VP")
    assert "in progress" in reply["text"], reply["text"]


def assert_no_forgery(fake: FakeSlack, channel: str, before: int) -> None:
    posts = fake.posts(channel)[before:]
    assert posts, f"nothing was posted to {channel}"
    assert forged_layout(posts) == []
    assert shown_as_text(posts)
    for post in posts:
        bk.validate(post["blocks"])


# --- no layout forgery -------------------------------------------------------------------------------------


async def test_a_phase_failure_reason_cannot_forge_a_header_divider_or_context(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    before = len(fake_slack.posts("C0WAR"))
    reply = await slack.command("/phase", f"fail db-migration {FORGED}", user="U0DBA")
    assert "failed" in reply["text"], reply["text"]
    assert_no_forgery(fake_slack, "C0WAR", before)


async def test_a_rollback_reason_cannot_forge_layout_in_the_war_room_or_announcements(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await start_release(slack)
    war, ann = len(fake_slack.posts("C0WAR")), len(fake_slack.posts("C0ANN"))
    reply = await slack.command("/release", f"rollback {FORGED}", user="U0RM")
    assert "Rollback started" in reply["text"], reply["text"]
    assert_no_forgery(fake_slack, "C0WAR", war)
    assert_no_forgery(fake_slack, "C0ANN", ann)


async def test_an_abort_reason_cannot_forge_layout(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    war, ann = len(fake_slack.posts("C0WAR")), len(fake_slack.posts("C0ANN"))
    reply = await slack.command("/release", f"abort {FORGED}", user="U0RM")
    assert "abort" in reply["text"].lower(), reply["text"]
    assert_no_forgery(fake_slack, "C0WAR", war)
    assert_no_forgery(fake_slack, "C0ANN", ann)


async def test_an_issue_impact_and_error_cannot_forge_layout(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    before = len(fake_slack.posts("C0WAR"))
    reply = await slack.command("/issue", f"high api {FORGED} | {FORGED}", user="U0DEV")
    assert "Issue #1" in reply["text"], reply["text"]
    assert_no_forgery(fake_slack, "C0WAR", before)


async def test_a_no_go_reason_cannot_forge_layout_in_the_vote(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    await slack.action(click(slack.fake, "vote_no_go", "U0QA"))
    [opened] = await slack.fake.wait_for("views.open", 1)
    await slack.action(submission(opened["view"], "U0QA", {"reason": {"type": "plain_text_input", "value": FORGED}}))
    await settle(slack, "chat.postEphemeral", 1)
    update = slack.fake.of("chat.update")[-1]
    assert forged_layout([update]) == []
    assert shown_as_text([update])
    bk.validate(update["blocks"])


async def test_a_custom_template_that_interpolates_a_reason_keeps_it_data(
    tmp_path: Path, runtime: Runtime, slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "rollback_started.j2").write_text(
        "# Rollback: {{ data.reason }}\n{{ data.reason }}\n\n~ {{ data.reason }}\n"
    )
    text = plan_text() + f"templates_dir: {templates}\n"
    await runtime.service.load(LoadedPlan(parse_plan(text, str(tmp_path / "plan.yml")), text, "plan.yml"))
    await start_release(slack)
    before = len(fake_slack.posts("C0WAR"))
    await slack.command("/release", f"rollback <!channel> {FORGED}", user="U0RM")
    posts = fake_slack.posts("C0WAR")[before:]
    [notice] = [p for p in posts if p["blocks"][0]["type"] == "header" and "Rollback" in str(p["blocks"][0])]
    kinds = [b["type"] for b in notice["blocks"]]
    assert kinds == ["header", "section", "context"], kinds  # exactly the template's own layout
    assert "<!channel>" not in notice["text"] and "&lt;!channel&gt;" in notice["text"]  # the header's text too
    bk.validate(notice["blocks"])


# --- one escaping path: every message the bot can send ------------------------------------------------------

HOSTILE = (
    "<!here> <!channel> <!everyone> <!subteam^SALL|@all> <https://evil.example|approve> "
    "<@U0EVIL extra> <#nope> & <beta>"
)
FORBIDDEN = ("<!here", "<!channel", "<!everyone", "<!subteam", "<https://evil", "|approve>", "<beta>", "<@U0EVIL")
TOKEN = re.compile(r"<([@#!])([^|>]*)")


def hostile_plan() -> str:
    text = plan_text()
    text = text.replace("name: Test Platform", 'name: "Payments <!here> & <beta>"')
    text = text.replace("version: v1.2.3", 'version: "v1 <!channel>"')
    text = text.replace("name: Database Migration", 'name: "DB <!everyone> migration"')
    text = text.replace('triggers: ["Error rate > 1% for 5+ minutes"]', 'triggers: ["Errors <!here> > 1%"]')
    text = text.replace(
        "  final_authority: vp_engineering", '  final_authority: vp_engineering\n  checklist: ["Backups <!channel>"]'
    )
    return text


def texts(payload: Any, top: bool = True) -> list[tuple[str, str]]:
    """Every text Slack shows in a payload, as (kind, text): mrkdwn and plain_text objects, and `text`."""
    found: list[tuple[str, str]] = []
    if isinstance(payload, dict):
        if payload.get("type") in {"mrkdwn", "plain_text"} and isinstance(payload.get("text"), str):
            found.append((payload["type"], payload["text"]))
        elif top and isinstance(payload.get("text"), str):
            found.append(("text", payload["text"]))
        for key, item in payload.items():
            if key != "text" or not isinstance(item, str):
                found += texts(item, top=False)
    elif isinstance(payload, list):
        for item in payload:
            found += texts(item, top=False)
    return found


def leaks(kind: str, text: str, known: set[str]) -> list[str]:
    """Tokens in mrkdwn or `text` that the bot did not make: anything forbidden, or a mention of an
    id that neither the plan nor the people acting named. plain_text shows tokens literally."""
    if kind == "plain_text":
        return []
    bad = [f for f in FORBIDDEN if f in text]
    for sigil, body in TOKEN.findall(text):
        if sigil == "!" and not body.startswith("date^"):
            bad.append(f"<!{body}")
        elif sigil in "@#" and body not in known:
            bad.append(f"<{sigil}{body}")
    return bad


async def test_hostile_text_reaches_no_message_the_bot_sends_as_a_token(
    runtime: Runtime, slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    text = hostile_plan()
    await runtime.service.load(LoadedPlan(parse_plan(text, "hostile.yml"), text, "hostile.yml"))
    await runtime.dispatcher.run_due()
    sent = {"/phase": ["start db-migration", f"done pre-deployment {HOSTILE}", f"done nope {HOSTILE}", "list"]}
    for command, lines in sent.items():
        for line in lines:
            await slack.command(command, line, user="U0RM")
    await slack.command("/issue", f"critical api {HOSTILE}\n# forged | {HOSTILE}", user="U0DEV")
    await slack.command("/issue", f"high {HOSTILE}", user="U0DEV")  # refused: not a component
    await slack.command("/issue", "list")
    await slack.command("/page", f"dba {HOSTILE}", user="U0RM")
    await slack.command("/page", "list")
    await slack.command("/page", "ack 2", user="U0DBA")
    await runtime.dispatcher.run_due()
    card = next(p for p in fake_slack.posts("C0WAR") if str(p.get("text", "")).startswith("ISSUE DETECTED"))
    resolve = next(
        e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"] if "resolve" in e["action_id"]
    )
    await slack.action({**click(fake_slack, resolve["action_id"], "U0RM", resolve["value"])})
    await open_vote(slack, clock)
    await slack.action(click(fake_slack, "vote_no_go", "U0QA"))
    await slack.action(click(fake_slack, "vote_decide", "U0VP"))
    views = await fake_slack.wait_for("views.open", 3)
    no_go = next(v["view"] for v in views if v["view"]["callback_id"] == "vote_no_go_modal")
    await slack.action(submission(no_go, "U0QA", {"reason": {"type": "plain_text_input", "value": HOSTILE}}))
    await settle(slack, "chat.postEphemeral", 1)
    await slack.command("/gonogo", "")
    await slack.command("/gonogo", "go", user="U0QA")  # changes the vote: the deadline finds votes missing
    clock.set(T0 - timedelta(minutes=5, seconds=-1))
    await runtime.dispatcher.run_due()  # the deadline: reminders by DM and in the war room
    await slack.command("/gonogo", f"decide go {HOSTILE}", user="U0VP")
    await runtime.dispatcher.run_due()
    clock.set(T0 + timedelta(minutes=20))
    await runtime.dispatcher.run_due()  # T0: the release starts, status updates begin
    await slack.command("/issue", f"critical web {HOSTILE}", user="U0DEV")  # continue or roll back?
    await slack.command("/release", "status")
    await slack.command("/release", "schedule")
    await slack.command("/issue", f"resolve 1 {HOSTILE}", user="U0RM")
    clock.set(T0 + timedelta(minutes=61))
    await runtime.dispatcher.run_due()  # the rollback decision point
    await slack.command("/release", f"rollback {HOSTILE}", user="U0RM")
    await runtime.dispatcher.run_due()
    event = {
        "token": "t",
        "team_id": "T111",
        "api_app_id": "A111",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": 1,
        "event": {"type": "app_home_opened", "user": "U0RM", "channel": "D1", "tab": "home"},
    }
    body = json.dumps(event)
    response = await slack.client.post(
        "/slack/events", data=body, headers={**sign(body), "Content-Type": "application/json"}
    )
    assert response.status == 200
    await fake_slack.wait_for("views.publish")

    plan = runtime.service.plans["r1"]
    known = set(plan.members(list(plan.people))) | {"C0WAR", "C0ANN", "C0INC", "U0STRANGER"}
    methods = ("chat.postMessage", "chat.update", "chat.postEphemeral", "respond", "views.open", "views.publish")
    payloads = [(c.method, c.args) for c in fake_slack.calls if c.method in methods]
    assert {m for m, _ in payloads} == set(methods), "every kind of message was sent"
    problems = [
        (method, kind, text[:200], bad)
        for method, args in payloads
        for kind, text in texts(args)
        if (bad := leaks(kind, text, known))
    ]
    assert problems == [], "\n".join(map(str, problems))
    for method, args in payloads:
        blocks = (args.get("view") or {}).get("blocks") if method.startswith("views.") else args.get("blocks")
        if blocks:
            bk.validate(blocks)
    assert any("&lt;!here&gt;" in t for _, args in payloads for k, t in texts(args) if k == "text")
    shown = " ".join(str(args.get("text")) for _, args in payloads)
    expected_texts = (
        "ISSUE DETECTED",
        "You are paged",
        "Go/No-Go vote missing",
        "Go/No-Go decision",
        "has started",
        "STATUS UPDATE",
        "continue or roll back",
        "Rollback decision point",
        "Rollback started",
    )
    for expected in expected_texts:
        assert expected in shown, expected


# --- mentions policy -----------------------------------------------------------------------------------------


def test_every_slash_command_asks_slack_for_mention_tokens() -> None:
    for command in ("/release", "/phase", "/issue", "/page", "/gonogo"):
        assert should_escape(command), command


async def test_a_colleague_named_in_an_issue_gets_a_working_mention_and_broadcasts_do_not(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    fake_slack.members["dana"] = "U0DBA"
    fake_slack.handles["everyone-eng"] = "S0ENG"
    typed = "ask @dana, see #deployment-war-room & https://status.example/x · @here @channel @everyone-eng <!here>"
    reply = await slack.command("/issue", f"high api {typed} | A & B <c>", user="U0DEV")
    assert "Issue #1" in reply["text"], reply["text"]
    [issue] = (await slack.runtime.service.get("r1")).issues
    assert issue.impact.startswith("ask <@U0DBA|dana>, see <#C0WAR|deployment-war-room> & <https://status.example/x>")
    assert issue.error == "A & B <c>"  # stored as written: exports show it as typed
    card = next(p for p in fake_slack.posts("C0WAR") if str(p.get("text", "")).startswith("ISSUE DETECTED"))
    shown = json.dumps(card["blocks"]) + card["text"]
    assert "ask <@U0DBA>, see <#C0WAR> &amp; https://status.example/x" in shown
    assert "&lt;!here&gt; &lt;!channel&gt; &lt;!subteam^S0ENG|@everyone-eng&gt; &lt;!here&gt;" in shown
    assert "A &amp; B &lt;c&gt;" in shown and "&amp;amp;" not in shown and "&amp;lt;" not in shown
    for token in ("<!here", "<!channel", "<!subteam"):
        assert token not in shown


def test_links_show_where_they_go() -> None:
    assert slack_escape("<https://evil.example|approve here>") == "approve here (https://evil.example)"
    assert slack_escape("<https://ok.example/a?b=1&c=2>") == "https://ok.example/a?b=1&amp;c=2"
    assert slack_escape("<https://ok.example|ok.example>") == "https://ok.example"
    assert slack_escape("<@U0RM|forged label> <#C0WAR|x>") == "<@U0RM> <#C0WAR>"
    assert slack_escape("<@U0RM extra> <@> <#> <!date^1^{date}|x>") == (
        "&lt;@U0RM extra&gt; &lt;@&gt; &lt;#&gt; &lt;!date^1^{date}|x&gt;"
    )


# --- paging only what the plan allows ----------------------------------------------------------------------


async def test_a_page_to_a_group_or_id_outside_the_plan_is_refused_with_the_roles(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    fake_slack.handles["allstaff"] = "SALLSTAFF"
    before = await slack.runtime.service.get("r1")
    for typed in ("<!subteam^SALLSTAFF|x> db down", "@allstaff db down", "S999ALL db down", "U0NOBODY db down"):
        reply = await slack.command("/page", typed, user="U0RM")
        refused = ("has no role", "is not in this plan")
        assert any(r in reply["text"] for r in refused), (typed, reply["text"])
        assert "Roles: cto, dba, devops_lead" in reply["text"]
        assert "<!subteam" not in reply["text"]
    assert await slack.runtime.service.get("r1") == before
    assert not [p for p in fake_slack.posts() if "subteam" in json.dumps(p)]


async def test_role_names_are_matched_without_regard_to_case(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    plan = slack.runtime.service.plans["r1"]
    slack.runtime.service.plans["r1"] = plan.model_copy(update={"people": {**plan.people, "security": ["U0SEC"]}})
    reply = await slack.command("/page", "SECURITY db down", user="U0RM")
    assert "Page #1 sent to security" in reply["text"], reply["text"]
    reply = await slack.command("/page", "@Dba db down", user="U0RM")
    assert "Page #2 sent to dba" in reply["text"], reply["text"]
    assert [p.targets for p in (await slack.runtime.service.get("r1")).pages] == [("U0SEC",), ("U0DBA",)]
    await fake_slack.wait_until(lambda: bool(fake_slack.posts("U0SEC")))


async def test_a_page_to_a_mentioned_member_or_a_group_of_the_plan_goes_out(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    plan = slack.runtime.service.plans["r1"]
    slack.runtime.service.plans["r1"] = plan.model_copy(update={"people": {**plan.people, "sre": ["S0SRE"]}})
    fake_slack.groups["S0SRE"] = ["U0SRE1"]
    fake_slack.members["newcomer"] = "U0NEW"
    fake_slack.handles["sre-team"] = "S0SRE"
    reply = await slack.command("/page", "@newcomer please look", user="U0RM")
    assert "Page #1 sent to <@U0NEW>" in reply["text"], reply["text"]
    reply = await slack.command("/page", "@sre-team please look", user="U0RM")
    assert "Page #2 sent" in reply["text"], reply["text"]
    pages = (await slack.runtime.service.get("r1")).pages
    assert [p.targets for p in pages] == [("U0NEW",), ("S0SRE",)]


# --- control characters ------------------------------------------------------------------------------------


@pytest.fixture
async def driver(any_database: str, fake_slack: FakeSlack, clock: Clock) -> AsyncIterator[SlackDriver]:
    rt = await build_runtime(make_settings(fake_slack, any_database), clock=clock)
    await rt.service.load(LoadedPlan(parse_plan(plan_text(), "test.yml"), plan_text(), "test.yml"))
    client = TestClient(TestServer(web_app(rt, serve_slack=True)))
    await client.start_server()
    try:
        yield SlackDriver(client, fake_slack, rt)
    finally:
        await client.close()
        await rt.close()


async def test_control_characters_in_a_command_are_refused_the_same_on_both_databases(
    driver: SlackDriver, fake_slack: FakeSlack
) -> None:
    for typed in ("high api db\x00down", "high api fine | err\x1b[31mred", "high api bell\x07"):
        reply = await driver.command("/issue", typed, user="U0DEV")
        assert "control character" in reply["text"] and "U+00" in reply["text"], reply["text"]
        assert "Something went wrong" not in reply["text"]
    reply = await driver.command("/phase", "fail db-migration disk\x00full", user="U0DBA")
    assert "control character" in reply["text"], reply["text"]
    release = await driver.runtime.service.get("r1")
    assert release.issues == () and release.phase("db-migration").status.value == "pending"  # type: ignore[union-attr]
    assert not [p for p in fake_slack.posts("C0WAR") if "ISSUE" in str(p.get("text"))]
    reply = await driver.command("/issue", "high api line one\r\nline\ttwo", user="U0DEV")
    assert "Issue #1" in reply["text"], reply["text"]
    [issue] = (await driver.runtime.service.get("r1")).issues
    assert issue.impact == "line one\nline\ttwo"


async def test_control_characters_in_a_form_are_shown_in_the_form_and_change_nothing(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    view = issue_modal(slack.runtime.service.plans["r1"], "r1", "C0WAR")  # what `/issue` alone opens
    values = {
        "severity": {"type": "static_select", "selected_option": {"value": "high"}},
        "component": {"type": "static_select", "selected_option": {"value": "api"}},
        "impact": {"type": "plain_text_input", "value": "db\x00down"},
    }
    answer = await slack.action(submission(view, "U0DEV", values))
    assert answer["response_action"] == "errors" and "control character" in answer["errors"]["impact"]
    assert (await slack.runtime.service.get("r1")).issues == ()


# --- oversized input ---------------------------------------------------------------------------------------


def refused_calls(fake: FakeSlack) -> list[str]:
    return [c.method for c in fake.calls if c.method.endswith(":refused")]


async def test_oversized_input_is_cut_with_an_ellipsis_and_slack_accepts_every_payload(
    runtime: Runtime, slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    long_name = "N" * 115 + " &<>"  # within the plan's 120 characters; escaped, longer than a header allows
    text = plan_text().replace("name: Test Platform", f'name: "{long_name}"').replace("v1.2.3", "v" + "9" * 39)
    await runtime.service.load(LoadedPlan(parse_plan(text, "long.yml"), text, "long.yml"))
    await runtime.dispatcher.run_due()
    reply = await slack.command("/issue", f"high api {'impact ' * 850} | {'error ' * 400}", user="U0DEV")
    assert "Issue #1" in reply["text"], reply["text"]
    [issue] = (await runtime.service.get("r1")).issues
    assert issue.impact.endswith("…") and len(issue.impact) <= 2000  # cut where it is stored, visibly
    await slack.command("/phase", f"fail db-migration {'x' * 5000}", user="U0DBA")
    await slack.command("/page", f"dba {'y' * 5000}", user="U0RM")
    await start_release(slack)
    await slack.command("/release", f"rollback {'because ' * 500}", user="U0RM")
    await slack.command("/release", "status")
    await slack.command("/issue", "list")
    await runtime.dispatcher.run_due()
    assert refused_calls(fake_slack) == []
    posts = fake_slack.posts()
    card = next(p for p in posts if str(p.get("text", "")).startswith("ISSUE DETECTED"))
    assert "…" in json.dumps(card["blocks"], ensure_ascii=False)
    headers = [b for p in posts for b in p["blocks"] if b["type"] == "header"]
    assert any(h["text"]["text"].endswith("…") and len(h["text"]["text"]) <= 150 for h in headers)
    rollback = [p for p in posts if "Rollback started" in str(p.get("text"))]
    assert {p["channel"] for p in rollback} == {"C0WAR", "C0ANN"}
    assert all("…" in json.dumps(p["blocks"], ensure_ascii=False) for p in rollback)


async def test_the_fake_slack_refuses_what_slack_refuses(fake_slack: FakeSlack) -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url)
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    for kwargs, error in [
        ({"text": "x" * 40001}, "msg_too_long"),
        ({"text": "t", "blocks": [too_long]}, "invalid_blocks"),
        ({"text": "t", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
    ]:
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel="C0WAR", **kwargs)
        assert raised.value.response["error"] == error
    assert fake_slack.posts() == []


def test_the_mention_filter_makes_tokens_only_of_ids(tmp_path: Path) -> None:
    (tmp_path / "postponed.j2").write_text("Paged: {{ data.reason | mention }} by {{ data.by | mention }}\n")
    plan = parse_plan(plan_text(), "test.yml").model_copy(update={"templates_dir": str(tmp_path)})
    release = release_from_plan(plan)
    data = {"reason": "x> <!channel", "by": "warroom"}
    message = render(plan, "postponed", release, T0, data)
    shown = json.dumps(message.blocks) + message.text
    assert "<!channel" not in shown and "<@x>" not in shown
    assert "x&gt; &lt;!channel" in shown and "by Warroom" in shown


async def test_a_control_character_in_a_no_go_reason_is_shown_in_the_form(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    await slack.action(click(slack.fake, "vote_no_go", "U0QA"))
    [opened] = await slack.fake.wait_for("views.open", 1)
    value = {"reason": {"type": "plain_text_input", "value": "backup\x00failed"}}
    answer = await slack.action(submission(opened["view"], "U0QA", value))
    assert answer["response_action"] == "errors" and "U+0000" in answer["errors"]["reason"]
    assert (await slack.runtime.service.get("r1")).ballots == ()
