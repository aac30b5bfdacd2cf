"""Form submissions are answered within Slack's 3 seconds, refusals shown in the form; and errors from forms
and App Home reach the person (there is no response_url to answer them through)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from bot.app import Runtime
from bot.domain import Vote
from messages.vote_cards import no_go_modal
from tests.conftest import Clock, SlackDriver, sign
from tests.fake_slack import FakeSlack
from tests.test_gonogo_handlers import OPEN_AT, submission
from tests.test_inbox import group_runtime
from tests.test_issues import view_submission

REASON = {"reason": {"type": "plain_text_input", "value": "backups not verified"}}


def with_metadata(payload: dict[str, Any], raw: str) -> dict[str, Any]:
    payload["view"]["private_metadata"] = raw
    return payload


async def test_a_form_with_unreadable_metadata_is_refused_in_the_form(slack: SlackDriver) -> None:
    form = view_submission("issue_modal", {}, {"severity": {"value": "high"}, "component": {"value": "api"}}, "U0QA")
    answer = await slack.action(with_metadata(form, "{not json"))
    assert answer["response_action"] == "errors"
    assert "could not be read" in answer["errors"]["impact"]

    resolve = view_submission("issue_resolve_modal", {"release": "r1", "issue": "one"}, {"note": "done"}, "U0DEV")
    answer = await slack.action(resolve)
    assert answer["response_action"] == "errors" and "issue" in answer["errors"]["note"]

    no_go = submission({"type": "modal", "callback_id": "vote_no_go_modal"}, "U0QA", REASON)
    answer = await slack.action(with_metadata(no_go, "[1, 2]"))
    assert answer["response_action"] == "errors" and "could not be read" in answer["errors"]["reason"]


async def test_a_form_for_a_release_this_process_has_not_loaded_is_refused_in_the_form(
    slack: SlackDriver, runtime: Runtime
) -> None:
    values = {"severity": {"value": "high"}, "component": {"value": "api"}, "impact": "slow"}
    answer = await slack.action(view_submission("issue_modal", {"release": "elsewhere"}, values, "U0QA"))
    assert answer["response_action"] == "errors" and "elsewhere" in answer["errors"]["impact"]

    no_go = submission({"type": "modal", "callback_id": "vote_no_go_modal"}, "U0QA", REASON)
    answer = await slack.action(with_metadata(no_go, json.dumps({"release": "elsewhere", "attempt": 1})))
    assert answer["response_action"] == "errors" and "elsewhere" in answer["errors"]["reason"]
    assert (await runtime.service.get("r1")).issues == ()


async def test_a_no_go_reason_is_answered_in_time_while_slack_rate_limits_the_user_group_look_up(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    clock.set(OPEN_AT + timedelta(minutes=1))
    fake_slack.groups["S0ONCALL"] = ["U0OC1", "U0OC2"]
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        slack = SlackDriver(client, fake_slack, runtime)
        await runtime.dispatcher.run_due()  # the vote opens at its time
        release = await runtime.service.get("r1")
        assert release.vote_opened_at is not None
        form = submission(no_go_modal(release, "C0WAR", release.attempt), "U0QA", REASON)
        fake_slack.fail["usergroups.users.list"] = [(429, {"ok": False, "error": "ratelimited"})] * 2
        fake_slack.retry_after["usergroups.users.list"] = 2

        # Bolt answers 404 when no ack came within 3 s: an answer at all is an answer in time
        answer = await slack.action(form)
        assert answer["response_action"] == "errors"
        assert "Submit again" in answer["errors"]["reason"]
        assert (await runtime.service.get("r1")).ballots == ()

        await fake_slack.wait_for("usergroups.users.list", 1, within=10)  # Slack answers at last
        answer = await slack.action(form)
        assert not answer or "errors" not in answer
        [ballot] = (await runtime.service.get("r1")).ballots
        assert (ballot.voter, ballot.vote, ballot.reason) == ("U0QA", Vote.NO_GO, "backups not verified")


async def test_an_unexpected_error_in_a_form_is_shown_in_the_form_and_sent_to_the_person(
    slack: SlackDriver, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def defect(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a defect in reading the form")

    # a form of any shape is read without failing (tests/test_security_requests.py): this stands for a bug
    monkeypatch.setattr("handlers.issue.form_report", defect)
    form = view_submission("issue_modal", {"release": "r1"}, {}, "U0QA")
    form["view"]["blocks"] = [{"type": "input", "block_id": "impact", "label": {"type": "plain_text", "text": "x"}}]
    answer = await slack.action(form)
    assert answer["response_action"] == "errors" and "error id" in answer["errors"]["impact"]
    [dm] = await fake_slack.wait_for("chat.postMessage", 1)
    assert dm["channel"] == "U0QA" and "Something went wrong" in dm["text"]


async def test_an_app_home_that_cannot_be_shown_is_explained_to_the_person(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    fake_slack.fail["views.publish"] = [(200, {"ok": False, "error": "internal_error"})]
    event = {
        "token": "verification_token", "team_id": "T111", "api_app_id": "A111", "type": "event_callback",
        "event_id": "Ev111", "event_time": 1700000000,
        "event": {"type": "app_home_opened", "user": "U0QA", "channel": "D0QA", "tab": "home", "event_ts": "1.2"},
    }  # fmt: skip
    body = json.dumps(event)
    response = await slack.client.post(
        "/slack/events", data=body, headers={**sign(body), "Content-Type": "application/json"}
    )
    assert response.status == 200
    [dm] = await fake_slack.wait_for("chat.postMessage", 1)
    assert dm["channel"] == "U0QA" and "Something went wrong" in dm["text"]
