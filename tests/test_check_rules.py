"""The checks' pure rules: what a Prometheus answer means, pass or fail, the failing stretch, the rollback
question a trigger raises (once per stretch), its answer, the timer, and the plan's `checks:` section."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.core.checks import (
    CHECKS_RULE,
    CHECKS_TIMER,
    Answer,
    AnswerCheck,
    answer_check,
    check_kind,
    check_prompt_key,
    check_ref,
    format_value,
    parse_answer,
    record_readings,
    tick,
)
from bot.domain import (
    Actor,
    Conflict,
    External,
    NotAllowed,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    SetTimer,
)
from bot.lifecycle import PointChoice
from bot.plan import Plan, PlanError, parse_plan
from bot.rules import load_plan_into
from messages.blocks import validate
from messages.check_cards import checks_reply, rollback_check
from messages.render import compose
from tests.conftest import T0, plan_text

CHECKS = """
integrations:
  prometheus: {url: "http://prometheus:9090/"}
checks:
  - {name: Error rate, query: 'job:errors:ratio5m', below: 0.01, unit: ratio, for: 5m,
     rollback_trigger: "Error rate > 1% for 5+ minutes"}
  - {name: Throughput, query: 'sum(rate(http_requests_total[5m]))', above: 10}
"""
RM = Actor("U0RM", frozenset({"release_manager"}))


@pytest.fixture
def checks_plan() -> Plan:
    return parse_plan(plan_text() + CHECKS, "checks.yml")


def running(plan: Plan) -> Release:
    release = load_plan_into(None, plan, T0 - timedelta(hours=3)).release
    return replace(release, status=ReleaseStatus.IN_PROGRESS, started_at=T0)


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [1.5, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, vector("0.004"), Answer(0.004)),
        (200, {"status": "success", "data": {"resultType": "scalar", "result": [1.5, "7"]}}, Answer(7.0)),
        (200, vector("+Inf"), Answer(float("inf"))),
        (200, vector(), Answer(error="no data: the query matched no series")),
        (200, vector("NaN"), Answer(error="the value is NaN (often no traffic in the window: 0/0)")),
        (
            200,
            vector("1", "2", "3"),
            Answer(error="the query returned 3 series; a check needs one number: aggregate it (e.g. sum(…) or max(…))"),
        ),
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unclosed left parenthesis"},
            Answer(error="Prometheus said bad_data: 1:5: parse error: unclosed left parenthesis"),
        ),
        (
            503,
            {"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"},
            Answer(error="Prometheus said timeout: query timed out in expression evaluation"),
        ),
        (502, None, Answer(error="Prometheus answered HTTP 502")),
        (200, None, Answer(error="the answer is not a Prometheus query result")),
        (200, {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}, None),
        (200, vector("many"), Answer(error="the answer's sample is not a number")),
    ],
)
def test_prometheus_answers_are_a_number_or_say_why_not(status: int, body: Any, expected: Answer | None) -> None:
    answer = parse_answer(status, body)
    if expected is None:
        assert answer.value is None and "cannot compare with a threshold" in answer.error
    else:
        assert answer == expected


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.0004, "ratio", "0.04%"),
        (0.2, "seconds", "200ms"),
        (1.5, "seconds", "1.5s"),
        (2_500_000, "bytes", "2.5 MB"),
        (12.34567, "number", "12.35"),
        (float("inf"), "seconds", "+∞"),
    ],
)
def test_values_are_shown_in_their_unit(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_a_reading_on_the_wrong_side_fails_and_equal_to_the_threshold_fails(checks_plan: Plan) -> None:
    release = running(checks_plan)
    now = T0 + timedelta(minutes=1)
    answers = {"Error rate": Answer(0.01), "Throughput": Answer(11)}
    outcome = record_readings(release, checks_plan, answers, now)
    error, throughput = (outcome.release.check(n) for n in ("Error rate", "Throughput"))
    assert error is not None and error.ok is False and error.failing_since == now
    assert throughput is not None and throughput.ok is True and throughput.failing_since is None
    assert SetTimer(CHECKS_TIMER, now + timedelta(minutes=1), CHECKS_RULE) in outcome.effects
    [event] = outcome.events
    assert event.kind == "checks.read" and event.data["shown_on"] == "timer"  # first readings: a change


def _read(release: Release, plan: Plan, value: float | None, at: timedelta, **kwargs: Any) -> Any:
    answer = Answer(value) if value is not None else Answer(error="cannot connect to Prometheus")
    return record_readings(release, plan, {"Error rate": answer}, T0 + at, **kwargs)


def test_a_trigger_asks_once_after_failing_for_its_for_and_again_only_after_a_new_stretch(checks_plan: Plan) -> None:
    release = running(checks_plan)
    first = _read(release, checks_plan, 0.05, timedelta(minutes=1))
    assert not [e for e in first.effects if isinstance(e, Post)]
    unread = _read(first.release, checks_plan, None, timedelta(minutes=3))  # Prometheus down: stretch kept
    assert unread.release.check("Error rate").failing_since == T0 + timedelta(minutes=1)
    assert unread.release.check("Error rate").ok is None
    early = _read(unread.release, checks_plan, 0.05, timedelta(minutes=5, seconds=59))
    assert not [e for e in early.effects if isinstance(e, Post)]
    assert [e.kind for e in early.events] == ["checks.read"]  # unreadable → failing is a change the timeline keeps
    asked = _read(early.release, checks_plan, 0.05, timedelta(minutes=6))
    [post] = [e for e in asked.effects if isinstance(e, Post)]
    assert post.template == "rollback_check" and post.key == check_prompt_key("Error rate", 1)
    assert post.data["since"] == (T0 + timedelta(minutes=1)).isoformat() and post.data["value"] == 0.05
    assert asked.release.decision(check_kind("Error rate")).outcome == "asked"
    assert [e.kind for e in asked.events] == ["rollback.check_asked"]
    again = _read(asked.release, checks_plan, 0.07, timedelta(minutes=7))
    assert not [e for e in again.effects if isinstance(e, Post)]
    assert Refresh(check_prompt_key("Error rate", 1)) in again.effects  # the open question shows the new value
    healed = _read(again.release, checks_plan, 0.001, timedelta(minutes=8))
    assert healed.release.check("Error rate").failing_since is None
    relapse = _read(healed.release, checks_plan, 0.05, timedelta(minutes=9))
    later = _read(relapse.release, checks_plan, 0.05, timedelta(minutes=14))
    [second] = [e for e in later.effects if isinstance(e, Post)]
    assert second.key == check_prompt_key("Error rate", 2)


def test_no_question_before_the_release_runs(checks_plan: Plan) -> None:
    scheduled = load_plan_into(None, checks_plan, T0 - timedelta(hours=3)).release
    outcome = _read(scheduled, checks_plan, 0.5, timedelta(hours=1))
    outcome = _read(outcome.release, checks_plan, 0.5, timedelta(hours=2))
    assert not [e for e in outcome.effects if isinstance(e, Post)]


def test_readings_shown_on_a_message_go_on_the_timeline_and_it_needs_no_refresh(checks_plan: Plan) -> None:
    release = running(checks_plan)
    outcome = record_readings(
        release, checks_plan, {"Throughput": Answer(50)}, T0, shown_on="rollback_prompt", rendering="rollback:prompt"
    )
    [event] = outcome.events
    assert event.data == {
        "shown_on": "rollback_prompt",
        "readings": [
            {"name": "Throughput", "value": 50.0, "ok": True, "read_at": T0.isoformat(), "error": ""},
        ],
    }
    assert Refresh("rollback:prompt") not in outcome.effects


def _asked(plan: Plan) -> Release:
    release = _read(running(plan), plan, 0.05, timedelta(minutes=1)).release
    return _read(release, plan, 0.05, timedelta(minutes=7)).release


def test_continue_is_recorded_with_who_and_rolls_nothing_back(checks_plan: Plan) -> None:
    release = _asked(checks_plan)
    command = AnswerCheck(check_ref("Error rate"), PointChoice.CONTINUE)
    outcome = answer_check(release, checks_plan, RM, command, T0 + timedelta(minutes=8))
    assert outcome.release.status is ReleaseStatus.IN_PROGRESS
    decision = outcome.release.decision(check_kind("Error rate"))
    assert decision is not None and decision.outcome == "continue" and decision.decided_by == "U0RM"
    assert [e.kind for e in outcome.events] == ["rollback.continued"]
    with pytest.raises(Conflict, match="already answered: continue, by <@U0RM>"):
        answer_check(outcome.release, checks_plan, RM, command, T0 + timedelta(minutes=9))


def test_roll_back_starts_the_rollback_with_the_trigger_as_reason(checks_plan: Plan) -> None:
    release = _asked(checks_plan)
    command = AnswerCheck(check_ref("Error rate"), PointChoice.ROLLBACK)
    outcome = answer_check(release, checks_plan, RM, command, T0 + timedelta(minutes=8))
    assert outcome.release.status is ReleaseStatus.ROLLING_BACK
    assert outcome.release.decision("rollback").rationale == "Check Error rate failing: Error rate > 1% for 5+ minutes"
    assert [e.kind for e in outcome.events] == ["rollback.check_answered", "release.rollback_started"]
    assert Refresh(check_prompt_key("Error rate", 1)) in outcome.effects


def test_only_the_deciders_may_answer_and_only_a_question_that_was_asked(checks_plan: Plan) -> None:
    command = AnswerCheck(check_ref("Error rate"), PointChoice.ROLLBACK)
    with pytest.raises(NotAllowed):
        answer_check(_asked(checks_plan), checks_plan, Actor("U0DBA", frozenset({"dba"})), command, T0)
    with pytest.raises(Conflict, match="has not raised a rollback question"):
        answer_check(running(checks_plan), checks_plan, RM, command, T0)


def test_the_timer_reads_while_the_vote_is_open_or_the_release_runs_and_stops_after(checks_plan: Plan) -> None:
    scheduled = load_plan_into(None, checks_plan, T0 - timedelta(hours=3)).release
    now = T0 - timedelta(hours=2)
    waiting = tick(scheduled, checks_plan, now, {})
    assert waiting.effects == (SetTimer(CHECKS_TIMER, now + timedelta(minutes=5), CHECKS_RULE),)
    voting = replace(scheduled, vote_opened_at=T0 - timedelta(minutes=30))
    reading = tick(voting, checks_plan, T0 - timedelta(minutes=20), {})
    assert reading.effects[0] == External("prometheus", "read", {})
    assert tick(running(checks_plan), checks_plan, T0, {}).effects[0] == External("prometheus", "read", {})
    done = tick(replace(_asked(checks_plan), status=ReleaseStatus.COMPLETED), checks_plan, T0, {})
    assert done.effects == (Refresh(check_prompt_key("Error rate", 1)),)  # closes the open question, no re-arm


def test_the_cards_show_checks_not_read_yet_truthfully_and_validate(checks_plan: Plan) -> None:
    release = running(checks_plan)
    message = compose(checks_plan, "gonogo_vote", replace(release, status=ReleaseStatus.SCHEDULED), T0, {})
    validate(message.blocks)
    assert "⏳ *Error rate* (&lt; 1%) — not read yet (read live from Prometheus when this is posted)" in str(
        message.blocks
    )
    asked = _asked(checks_plan)
    question = rollback_check(
        checks_plan,
        asked,
        T0,
        {
            "check": "Error rate",
            "number": 1,
            "since": T0.isoformat(),
            "value": 0.05,
            "trigger": "Error rate > 1% for 5+ minutes",
        },
    )
    validate(question.blocks)
    assert "Value when asked: *5%* (&lt; 1%)" in str(question.blocks)
    reply = checks_reply(checks_plan, asked, T0)
    validate(reply.blocks)
    assert reply.text == "Checks for Test Platform v1.2.3: 0 passing, 1 failing, 0 unreadable"


def test_typed_check_names_are_escaped_on_the_cards(checks_plan: Plan) -> None:
    text = plan_text() + CHECKS.replace("name: Throughput", "name: '<!channel> & co'")
    plan = parse_plan(text, "checks.yml")
    reading = record_readings(running(plan), plan, {"<!channel> & co": Answer(50)}, T0).release
    message = compose(plan, "status_update", reading, T0, {})
    assert "<!channel>" not in str(message.blocks) + message.text
    assert "&lt;!channel&gt; &amp; co" in str(message.blocks)


# --- the plan's checks: section ------------------------------------------------------------------------------


def _problems(extra: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        parse_plan(plan_text() + extra, "p.yml")
    return [str(p) for p in info.value.problems]


def _line(extra: str, needle: str) -> int:
    text = plan_text() + extra
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_check_needs_exactly_one_numeric_threshold() -> None:
    extra = """
integrations: {prometheus: {url: "http://prom:9090"}}
checks:
  - {name: Both, query: up, below: 1, above: 0}
  - {name: Neither, query: up}
  - {name: Words, query: up, below: "low"}
  - {name: Flag, query: up, above: true}
"""
    problems = _problems(extra)
    assert problems == [
        f"p.yml:{_line(extra, 'Both')}: checks[0]: a check needs exactly one of below: X or above: X "
        "(the value must stay below or above X)",
        f"p.yml:{_line(extra, 'Neither')}: checks[1]: a check needs exactly one of below: X or above: X "
        "(the value must stay below or above X)",
        f"p.yml:{_line(extra, 'Words')}: checks[2].below: must be a number such as 0.001 or 200 (got 'low')",
        f"p.yml:{_line(extra, 'Flag')}: checks[3].above: must be a number such as 0.001 or 200 (got True)",
    ]


def test_checks_need_a_prometheus_url_and_a_good_one() -> None:
    extra = "checks:\n  - {name: Up, query: up, above: 0}\n"
    assert _problems(extra) == [
        f"p.yml:{_line(extra, 'checks:')}: checks need a Prometheus to read them: add integrations: "
        "{prometheus: {url: http://…:9090}}"
    ]
    bad = 'integrations: {prometheus: {url: "prom:9090"}}\n'
    assert _problems(bad) == [
        f"p.yml:{_line(bad, 'integrations')}: integrations.prometheus.url: 'prom:9090' is not an http(s) URL: "
        "write the server's address, e.g. http://prometheus:9090"
    ]


def test_duplicate_names_unknown_triggers_unknown_keys_and_bad_durations_are_listed() -> None:
    extra = """
integrations: {prometheus: {url: "http://prom:9090"}}
checks:
  - {name: Up, query: up, above: 0}
  - {name: up, query: up, above: 0, rollback_trigger: "Error rate > 5%"}
  - {name: Late, query: up, above: 0, for: soon, treshold: 3}
"""
    problems = _problems(extra)
    assert f"p.yml:{_line(extra, 'name: up')}: check name 'up' is used twice (first at checks[0])" in problems
    assert (
        f"p.yml:{_line(extra, 'name: up')}: rollback_trigger 'Error rate > 5%' is not one of rollback.triggers "
        "('Error rate > 1% for 5+ minutes'): copy it exactly"
    ) in problems
    late = _line(extra, "name: Late")
    assert any(p.startswith(f"p.yml:{late}: checks[2].for: ") for p in problems)
    assert (
        f"p.yml:{late}: checks[2].treshold: unknown field (check the spelling; see the plan format in the README)"
    ) in problems


def test_warroom_check_accepts_a_plan_with_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(plan_text() + CHECKS)
    assert main(["check", str(path)]) == 0, capsys.readouterr().err


def test_the_report_tells_the_check_readings_and_the_answers_in_words(checks_plan: Plan) -> None:
    from bot.domain import Event
    from bot.report import decision_name, describe

    release = running(checks_plan)
    read = Event(
        "checks.read",
        T0,
        "warroom",
        data={
            "shown_on": "gonogo_vote",
            "readings": [
                {"name": "Error rate", "value": 0.0004, "ok": True, "read_at": T0.isoformat(), "error": ""},
                {"name": "API p95", "value": None, "ok": None, "read_at": T0.isoformat(), "error": "no data"},
            ],
        },
    )
    assert describe(read, release) == (
        "read the checks for the go/no-go vote: ✅ Error rate 0.0004; ⚠️ API p95 could not be read: no data"
    )
    continued = Event("rollback.continued", T0, "U0RM", "check:Error rate", {"reason": "spike is a bot"})
    assert describe(continued, release) == "chose to continue despite the failing check Error rate: spike is a bot"
    assert decision_name(check_kind("Error rate")) == "roll back on a failing check?"
