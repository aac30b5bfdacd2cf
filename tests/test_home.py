"""The App Home of the person who opens it: their releases, what waits for them first, buttons that work
there, and a Home that is published again when what waits for them changes."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from slack_sdk.models.blocks import Block

from bot.app import build_runtime
from bot.core.home import PAGE, SIGNOFF, TASKS, VOTE, Person, digest, waiting_for
from bot.domain import (
    Actor,
    Event,
    Outcome,
    Page,
    PhaseStatus,
    RefreshHome,
    Release,
    ReleaseStatus,
    SignOff,
    SignOffStatus,
    TaskCheck,
)
from bot.ids import ActionId, BlockId
from bot.plan import Plan, parse_plan
from bot.rules import load_plan_into
from bot.service import LoadedPlan
from bot.votes import OpenVote, open_vote
from messages.home_view import HOME_BLOCKS, Entry, home_view
from tests.conftest import FAST_PACE, T0, SlackDriver, home_click, make_settings, plan_text, sign
from tests.fake_slack import FakeSlack
from tests.test_issues import view_submission

SIGNOFFS = """
signoffs:
  - {role: qa_lead, criterion: "All smoke tests passed"}
  - {role: devops_lead, criterion: "Infrastructure healthy"}
"""


def checklist_plan_text() -> str:
    """The test plan with a checklist on the migration and two required sign-offs."""
    text = plan_text().replace(
        "  - {id: db-migration, name: Database Migration, start: 0, duration: 30m, owner: dba}",
        "  - id: db-migration\n    name: Database Migration\n    start: 0\n    duration: 30m\n    owner: dba\n"
        "    tasks: [Verify backup integrity, Run migration scripts, Validate schema changes]",
    )
    return text + SIGNOFFS


def checklist_plan() -> Plan:
    return parse_plan(checklist_plan_text(), "test.yml")


def release_of(plan: Plan) -> Release:
    return load_plan_into(None, plan, T0 - timedelta(hours=3)).release


def actions_of(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(action_id, value) of every button, in order."""
    found: list[tuple[str, str]] = []
    for block in blocks:
        for element in [*(block.get("elements") or []), *([block["accessory"]] if "accessory" in block else [])]:
            if element.get("type") == "button":
                found.append((element["action_id"], element["value"]))
    return found


def valid(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The view's blocks, after checking them the way Slack does (types, fields, at most 100)."""
    assert view["type"] == "home"
    blocks = view["blocks"]
    assert 0 < len(blocks) <= HOME_BLOCKS
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
    return blocks


def text_of(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def open_home(slack: SlackDriver, user: str) -> list[dict[str, Any]]:
    """Open the Home tab as `user` (an Events API envelope) and return the blocks published for them."""
    before = len(slack.fake.homes(user))
    event = {
        "token": "verification_token",
        "team_id": "T111",
        "api_app_id": "A111",
        "type": "event_callback",
        "event_id": f"Ev{user}{before}",
        "event_time": 1700000000,
        "event": {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home", "event_ts": "1.2"},
    }
    body = json.dumps(event)
    response = await slack.client.post(
        "/slack/events", data=body, headers={**sign(body), "Content-Type": "application/json"}
    )
    assert response.status == 200
    await slack.fake.wait_until(lambda: len(slack.fake.homes(user)) > before)
    await slack.runtime.settle()
    return valid(slack.fake.homes(user)[-1])


async def click_in_home(slack: SlackDriver, user: str, action_id: str, value: str) -> list[dict[str, Any]]:
    """Click a Home button as `user`; return the blocks of the Home published for them afterwards."""
    before = len(slack.fake.homes(user))
    await slack.action(home_click(user, action_id, value))
    await slack.fake.wait_until(lambda: len(slack.fake.homes(user)) > before)
    await slack.runtime.settle()
    return valid(slack.fake.homes(user)[-1])


async def test_a_voter_sees_the_open_vote_first_with_buttons_and_someone_else_in_the_plan_does_not(
    slack: SlackDriver,
) -> None:
    await slack.command("/gonogo", "open", user="U0RM")
    voter = await open_home(slack, "U0DBA")
    buttons = actions_of(voter)
    assert buttons[:2] == [(ActionId.VOTE_GO, "r1"), (ActionId.VOTE_NO_GO, "r1")]
    text = text_of(voter)
    assert text.index("go/no-go vote is open") < text.index("Test Platform v1.2.3 —"), "what waits comes first"
    oncall = await open_home(slack, "U0OC1")
    assert not any(a in {ActionId.VOTE_GO, ActionId.VOTE_NO_GO} for a, _ in actions_of(oncall))
    assert "Nothing is waiting for you" in text_of(oncall) and "Test Platform v1.2.3" in text_of(oncall)


async def test_someone_outside_every_plan_sees_why_and_no_other_team_s_release(slack: SlackDriver) -> None:
    blocks = await open_home(slack, "U0STRANGER")
    text = text_of(blocks)
    assert "not among the people of the 1 release Warroom runs" in text and "`people:`" in text
    assert "Test Platform" not in text and not actions_of(blocks)


async def test_a_member_of_a_user_group_in_the_plan_sees_the_release(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    fake_slack.groups["S0SRE"] = ["U0SRE1"]
    text = plan_text().replace("  cto: [U0CTO]", "  cto: [U0CTO]\n  sre: [S0SRE]")
    await slack.runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    assert "Test Platform v1.2.3" in text_of(await open_home(slack, "U0SRE1"))


async def test_the_person_paged_acknowledges_from_home_and_both_people_paged_get_their_home_again(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await open_home(slack, "U0OC2")  # opened before the page: refreshed when it comes and when it is taken
    await slack.command("/page", "1 database latency", user="U0RM")
    await fake_slack.wait_until(lambda: "Page #1" in text_of(fake_slack.homes("U0OC2")[-1]["blocks"]))
    blocks = await open_home(slack, "U0OC1")
    assert actions_of(blocks)[0] == (ActionId.PAGE_ACK, "r1:1")
    assert "database latency" in text_of(blocks)

    responses = len(fake_slack.of("respond"))
    after = await click_in_home(slack, "U0OC1", ActionId.PAGE_ACK, "r1:1")
    assert "You acknowledged page #1" in text_of(after), "the answer is on top of the Home"
    assert (ActionId.PAGE_ACK, "r1:1") not in actions_of(after)
    release = await slack.runtime.service.get("r1")
    assert release.page(1) is not None and release.page(1).acked_by == "U0OC1"  # type: ignore[union-attr]
    assert len(fake_slack.of("respond")) == responses, "there is no response_url to answer a Home click through"
    assert not [p for p in fake_slack.of("chat.postMessage") if p["channel"] == "U0OC1" and "acknowledged" in str(p)]
    await fake_slack.wait_until(lambda: "Page #1" not in text_of(fake_slack.homes("U0OC2")[-1]["blocks"]))


async def test_go_from_home_is_recorded_and_the_vote_leaves_the_home(slack: SlackDriver) -> None:
    await slack.command("/gonogo", "open", user="U0RM")
    await open_home(slack, "U0DEV")
    after = await click_in_home(slack, "U0DEV", ActionId.VOTE_GO, "r1")
    release = await slack.runtime.service.get("r1")
    assert [(b.voter, b.vote.value) for b in release.ballots] == [("U0DEV", "go")]
    assert not any(a == ActionId.VOTE_GO for a, _ in actions_of(after))
    assert "Go" in text_of(after[:3]), "the vote's answer is the notice on top"


async def test_a_refused_home_click_is_explained_in_the_home(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/gonogo", "open", user="U0RM")
    await open_home(slack, "U0OC1")
    after = await click_in_home(slack, "U0OC1", ActionId.VOTE_GO, "r1")  # not a voter
    assert "may vote go/no-go" in text_of(after[:3])
    assert (await slack.runtime.service.get("r1")).ballots == ()
    assert not [p for p in fake_slack.of("chat.postMessage") if p["channel"] == "U0OC1"], "no DM needed"


async def test_no_go_from_home_opens_the_reason_form(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/gonogo", "open", user="U0RM")
    await open_home(slack, "U0QA")
    await slack.action(home_click("U0QA", ActionId.VOTE_NO_GO, "r1"))
    [opened] = await fake_slack.wait_for("views.open")
    assert opened["view"]["callback_id"] and opened["trigger_id"].startswith("111.U0QA.home")
    form = opened["view"]
    before = len(fake_slack.homes("U0QA"))
    submitted = view_submission(
        form["callback_id"], json.loads(form["private_metadata"]), {BlockId.REASON: "backup not verified"}, "U0QA"
    )
    await slack.action(submitted)  # the form closes
    await fake_slack.wait_until(lambda: len(fake_slack.homes("U0QA")) > before)
    await slack.runtime.settle()
    [ballot] = (await slack.runtime.service.get("r1")).ballots
    assert (ballot.voter, ballot.vote.value, ballot.reason) == ("U0QA", "no_go", "backup not verified")
    home = valid(fake_slack.homes("U0QA")[-1])
    assert home[1]["type"] == "context" and "No-Go" in text_of(home[1:2]), "answered on top of the Home"
    assert not [p for p in fake_slack.of("chat.postMessage") if p["channel"] == "U0QA"], "no DM needed"


async def test_a_change_publishes_the_home_again_only_for_those_it_concerns_who_opened_it(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await open_home(slack, "U0DBA")  # a voter
    await open_home(slack, "U0OC1")  # not a voter
    dba, oncall = len(fake_slack.homes("U0DBA")), len(fake_slack.homes("U0OC1"))
    await slack.command("/gonogo", "open", user="U0RM")
    await fake_slack.wait_until(lambda: len(fake_slack.homes("U0DBA")) > dba)
    await slack.runtime.settle()
    assert (ActionId.VOTE_GO, "r1") in actions_of(fake_slack.homes("U0DBA")[-1]["blocks"])
    assert len(fake_slack.homes("U0OC1")) == oncall, "nothing waiting for them changed"
    assert not fake_slack.homes("U0QA"), "a voter who never opened the Home gets none"


async def test_a_refresh_home_effect_publishes_the_home_of_everyone_in_the_release_who_opened_it(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await open_home(slack, "U0OC1")
    await open_home(slack, "U0STRANGER")
    before = len(fake_slack.homes("U0OC1"))
    await slack.runtime.service.run("r1", lambda r, p, now: Outcome(r, effects=(RefreshHome(),)))
    await fake_slack.wait_until(lambda: len(fake_slack.homes("U0OC1")) > before)
    await slack.runtime.settle()
    assert len(fake_slack.homes("U0STRANGER")) == 1, "not in this release"


async def test_a_failed_refresh_is_logged_and_the_next_one_goes_out(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: Any
) -> None:
    await open_home(slack, "U0DBA")
    fake_slack.fail["views.publish"] = [(200, {"ok": False, "error": "user_not_found"})]
    await slack.command("/gonogo", "open", user="U0RM")
    await slack.runtime.settle()
    assert "could not publish the App Home of U0DBA: user_not_found" in caplog.text
    await slack.command("/gonogo", "go", user="U0RM")  # a change that concerns nobody's waiting items
    await slack.command("/page", "U0DBA disk", user="U0RM")
    await fake_slack.wait_until(lambda: "Page #1" in text_of(fake_slack.homes("U0DBA")[-1]["blocks"]))
    assert (ActionId.VOTE_GO, "r1") in actions_of(fake_slack.homes("U0DBA")[-1]["blocks"])


async def test_a_requested_sign_off_and_a_running_phase_s_tasks_reach_their_people_s_home(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    text = checklist_plan_text()
    await slack.runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await open_home(slack, "U0QA")
    await open_home(slack, "U0DBA")
    qa, dba = len(fake_slack.homes("U0QA")), len(fake_slack.homes("U0DBA"))

    def set_state(release: Release, _plan: Plan, now: Any) -> Outcome:
        phases = tuple(
            replace(p, status=PhaseStatus.IN_PROGRESS, started_at=now) if p.id == "db-migration" else p
            for p in release.phases
        )
        changed = replace(release, status=ReleaseStatus.IN_PROGRESS, phases=phases, signoffs_requested_at=now)
        events = (Event("signoffs.requested", now, "U0RM", data={"roles": ["qa_lead", "devops_lead"]}),)
        return Outcome(changed.with_task_check(TaskCheck("db-migration", 1, "U0DBA", now)), events)

    await slack.runtime.service.run("r1", set_state)
    await fake_slack.wait_until(lambda: len(fake_slack.homes("U0QA")) > qa and len(fake_slack.homes("U0DBA")) > dba)
    await slack.runtime.settle()
    qa_buttons = actions_of(fake_slack.homes("U0QA")[-1]["blocks"])
    assert (ActionId.SIGNOFF_SIGN, "r1:qa_lead") in qa_buttons and (ActionId.SIGNOFF_REFUSE, "r1:qa_lead") in qa_buttons
    dba_buttons = actions_of(fake_slack.homes("U0DBA")[-1]["blocks"])
    # the Home's buttons tick (never toggle), so a second click before the Home refreshes undoes nothing
    ticks = [(ActionId.TASK_TOGGLE, "r1:db-migration:2:tick"), (ActionId.TASK_TOGGLE, "r1:db-migration:3:tick")]
    assert dba_buttons == ticks


# --- what waits, from the state alone --------------------------------------------------------------------


def person(user: str, *roles: str, groups: tuple[str, ...] = ()) -> Person:
    return Person(Actor(user, frozenset(roles)), frozenset(groups))


def test_sign_offs_wait_for_their_role_until_answered_and_only_once_asked_for() -> None:
    plan = checklist_plan()
    release = release_of(plan)
    assert not waiting_for(plan, release, person("U0QA", "qa_lead")), "not asked for yet"
    asked = replace(release, signoffs_requested_at=T0)
    [item] = waiting_for(plan, asked, person("U0QA", "qa_lead"))
    assert (item.kind, item.subject, item.detail) == (SIGNOFF, "qa_lead", "All smoke tests passed")
    signed = asked.with_signoff(SignOff("qa_lead", SignOffStatus.SIGNED, "U0QA", T0))
    assert not waiting_for(plan, signed, person("U0QA", "qa_lead"))
    refused = asked.with_signoff(SignOff("devops_lead", SignOffStatus.REFUSED, "U0DEV", T0, "disk alarms"))
    assert not waiting_for(plan, refused, person("U0DEV", "devops_lead")), "a refusal is an answer"
    approved = replace(asked, approved_at=T0)
    assert not waiting_for(plan, approved, person("U0QA", "qa_lead"))


def test_open_tasks_wait_for_the_owner_of_a_running_phase_only() -> None:
    plan = checklist_plan()
    release = release_of(plan)
    running = replace(
        release,
        phases=tuple(
            replace(p, status=PhaseStatus.IN_PROGRESS) if p.id == "db-migration" else p for p in release.phases
        ),
    ).with_task_check(TaskCheck("db-migration", 2, "U0DBA", T0))
    [item] = waiting_for(plan, running, person("U0DBA", "dba"))
    assert item.kind == TASKS and [t.number for t in item.tasks] == [1, 3]
    assert not waiting_for(plan, running, person("U0QA", "qa_lead")), "not their phase"
    assert not waiting_for(plan, release, person("U0DBA", "dba")), "the phase is not running"


def test_a_page_to_a_group_waits_for_its_members_and_pages_come_first() -> None:
    plan = checklist_plan()
    page = Page(1, 1, ("S0SRE",), "disk full", "U0RM", T0)
    release = replace(release_of(plan), pages=(page,), vote_opened_at=T0 - timedelta(minutes=30))
    items = waiting_for(plan, release, person("U0SRE1", "dba", groups=("S0SRE",)))
    assert [i.kind for i in items] == [PAGE, VOTE]
    assert not any(i.kind == PAGE for i in waiting_for(plan, release, person("U0X", "dba")))


def test_the_fingerprint_changes_with_what_waits() -> None:
    plan = checklist_plan()
    release = replace(release_of(plan), vote_opened_at=T0)
    before = digest(waiting_for(plan, release, person("U0DBA", "dba")))
    assert before == digest(waiting_for(plan, release, person("U0DBA", "dba")))
    assert before != digest(waiting_for(plan, replace(release, vote_opened_at=None), person("U0DBA", "dba")))


def test_a_home_with_more_than_it_can_hold_stays_within_100_blocks_and_says_what_it_leaves_out() -> None:
    text = checklist_plan_text().replace(
        "tasks: [Verify backup integrity, Run migration scripts, Validate schema changes]",
        "tasks: [" + ", ".join(f"Task {n} <b>&" for n in range(1, 31)) + "]",
    )
    plan = parse_plan(text, "test.yml")
    release = release_of(plan)
    pages = tuple(Page(n, 1, ("U0DBA",), f"alarm {n}", "U0RM", T0) for n in range(1, 61))
    phases = tuple(replace(p, status=PhaseStatus.IN_PROGRESS) if p.id == "db-migration" else p for p in release.phases)
    release = replace(release, pages=pages, phases=phases, status=ReleaseStatus.IN_PROGRESS)
    you = person("U0DBA", "dba")
    entries = [Entry(plan, release, tuple(waiting_for(plan, release, you)))]
    blocks = valid(home_view(entries, T0, loaded=1))
    text_out = text_of(blocks)
    shown = len([a for a, _ in actions_of(blocks) if a == ActionId.PAGE_ACK])
    left = 61 - shown  # 60 pages and one phase's tasks
    assert shown > 40 and f"and {left} more waiting for you, not shown here" in text_out
    assert "Test Platform v1.2.3 —" in text_out, "the status card still has its place"
    assert "<b>" not in text_out, "typed text is escaped"

    tasks_only = replace(release, pages=())
    entries = [Entry(plan, tasks_only, tuple(waiting_for(plan, tasks_only, you)))]
    blocks = valid(home_view(entries, T0, loaded=1))
    assert "and 20 more open tasks — `/phase tasks db-migration`" in text_of(blocks)
    assert len([a for a, _ in actions_of(blocks) if a == ActionId.TASK_TOGGLE]) == 10


def test_many_releases_with_something_waiting_in_each_stay_within_100_blocks() -> None:
    entries = []
    for n in range(1, 31):
        plan = parse_plan(checklist_plan_text().replace("id: r1", f"id: r{n}"), "test.yml")
        release = replace(release_of(plan), vote_opened_at=T0, signoffs_requested_at=T0)
        entries.append(Entry(plan, release, tuple(waiting_for(plan, release, person("U0QA", "qa_lead")))))
    blocks = valid(home_view(entries, T0, loaded=30))
    text = text_of(blocks)
    assert "more waiting for you, not shown here" in text
    assert "more releases not shown — `/release status --release ID`" in text


async def test_the_fake_slack_refuses_a_home_slack_would_refuse(fake_slack: FakeSlack) -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    refused = {
        "no user": {"view": {"type": "home", "blocks": [section]}},
        "a modal": {"user_id": "U1", "view": {"type": "modal", "blocks": [section]}},
        "101 blocks": {"user_id": "U1", "view": {"type": "home", "blocks": [section] * 101}},
        "a bad block": {"user_id": "U1", "view": {"type": "home", "blocks": [{"type": "sectionx"}]}},
        "one block_id twice": {
            "user_id": "U1",
            "view": {"type": "home", "blocks": [{**section, "block_id": "a"}, {**section, "block_id": "a"}]},
        },
    }
    for name, args in refused.items():
        try:
            await client.api_call("views.publish", json=args)
        except SlackApiError as exc:
            assert exc.response["error"] == "invalid_arguments", name
        else:
            raise AssertionError(f"{name} was accepted")
    await client.views_publish(user_id="U1", view={"type": "home", "blocks": [section] * 100})
    assert fake_slack.homes("U1")[-1]["blocks"] == [section] * 100


async def test_an_issue_button_clicked_from_the_home_answers_there(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/issue", "high api Checkout failing", user="U0QA")
    await open_home(slack, "U0DEV")
    after = await click_in_home(slack, "U0DEV", ActionId.ISSUE_INVESTIGATE, "r1:1")
    issue = (await slack.runtime.service.get("r1")).issue(1)
    assert issue is not None and issue.investigator == "U0DEV"
    assert after[1]["type"] == "context" and "#1" in text_of(after[1:2]), "the answer is on top of the Home"


async def test_refreshing_homes_never_holds_back_the_command_that_changed_them(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await open_home(slack, "U0DBA")
    fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"views.publish"})
    reply = await slack.command("/gonogo", "open", user="U0RM", settle=False)
    assert "vote is open" in reply["text"]
    await fake_slack.wait_until(lambda: "views.publish" in fake_slack.waiting)
    assert len(fake_slack.homes("U0DBA")) == 1, "the refresh is still waiting for Slack"
    fake_slack.hold.set()
    await fake_slack.wait_until(lambda: len(fake_slack.homes("U0DBA")) == 2)
    await slack.runtime.settle()


async def test_background_refreshes_are_paced(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    voters = ["U0RM", "U0DEV", "U0DBA", "U0QA"]
    for user in voters:
        await open_home(slack, user)
    assert slack.runtime.home is not None
    slack.runtime.home.every = 0.2
    start = len(fake_slack.calls)
    await slack.command("/gonogo", "open", user="U0RM")
    await fake_slack.wait_until(lambda: all(len(fake_slack.homes(u)) == 2 for u in voters))
    times = [c.at for c in fake_slack.calls[start:] if c.method == "views.publish"]
    assert len(times) == 4
    assert all(later - earlier >= 0.19 for earlier, later in itertools.pairwise(times)), times


async def test_a_change_made_by_another_replica_refreshes_a_home_opened_on_this_one(
    slack: SlackDriver, fake_slack: FakeSlack, database_url: str, clock: Any
) -> None:
    await open_home(slack, "U0DBA")  # on this process
    other = await build_runtime(make_settings(fake_slack, database_url), clock=clock, pace=FAST_PACE)
    try:
        await other.service.load(LoadedPlan(parse_plan(plan_text(), "test.yml"), plan_text(), "test.yml"))
        manager = Actor("U0RM", frozenset({"release_manager"}))
        await other.service.run("r1", lambda r, p, now: open_vote(r, p, manager, OpenVote(), now))
        await other.settle()
    finally:
        await other.close()
    assert (ActionId.VOTE_GO, "r1") in actions_of(fake_slack.homes("U0DBA")[-1]["blocks"])
