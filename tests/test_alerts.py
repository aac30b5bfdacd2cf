"""Alerts to issues, pure: mapping, dedup by fingerprint, grouped and resolved alerts, the window, rollback triggers."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from bot.core.alerts import AlertNotice, alert_window_open, receive_alerts
from bot.domain import (
    Actor,
    IssueStatus,
    Outcome,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    Severity,
)
from bot.evaluation import AnswerEvaluation, answer
from bot.integrations.alertmanager import PayloadError, parse_delivery
from bot.issues import ResolveIssue, resolve_issue
from bot.lifecycle import PointChoice, evaluation_kind, pending_evaluations, start
from bot.plan import Plan, parse_plan
from bot.rules import release_from_plan
from messages import blocks as bk
from messages.render import compose
from tests.alert_payloads import GRAFANA, TRIGGER, alert, alert_plan_text, delivery
from tests.conftest import T0

NOW = T0 + timedelta(minutes=40)
VP = Actor("U0VP", frozenset({"vp_engineering"}))
RM = Actor("U0RM", frozenset({"release_manager"}))
PEOPLE = Actor("U0DEV", frozenset({"devops_lead"}))


@pytest.fixture
def plan() -> Plan:
    return parse_plan(alert_plan_text(), "alerts.yml")


def in_progress(plan: Plan) -> Release:
    return start(release_from_plan(plan), plan, VP, T0, force_reason="test").release


def notices(*alerts: dict[str, Any], **extra: Any) -> list[AlertNotice]:
    return parse_delivery(json.dumps(delivery(*alerts, **extra)).encode())[2]


def receive(release: Release, plan: Plan, *alerts: dict[str, Any], now: Any = NOW) -> Outcome:
    return receive_alerts(release, plan, notices(*alerts), now)


def posts(outcome: Outcome, template: str) -> list[Post]:
    return [e for e in outcome.effects if isinstance(e, Post) and e.template == template]


FIRING = alert(
    "HighErrorRate",
    labels={"region": "Region1"},
    annotations={"summary": "5xx above 1%", "description": "upstream reset"},
)


def test_a_firing_alert_opens_an_issue_as_issue_would(plan: Plan) -> None:
    outcome = receive(in_progress(plan), plan, FIRING)
    [issue] = outcome.release.issues
    assert (issue.severity, issue.component, issue.region) == (Severity.CRITICAL, "api", "region1")
    assert (issue.impact, issue.error, issue.reporter) == ("5xx above 1%", "upstream reset", "alertmanager")
    assert [p.channel for p in posts(outcome, "issue_card")] == ["war_room", "incidents"]
    assert outcome.release.pages and outcome.release.pages[0].level == 1, "critical pages level 1 at once"
    [link] = outcome.release.alerts
    assert (link.fingerprint, link.issue_number, link.status) == (FIRING["fingerprint"], 1, "firing")
    assert link.generator_url.startswith("http://prometheus:9090/graph")
    kinds = [e.kind for e in outcome.events]
    assert "issue.reported" in kinds and "alert.firing" in kinds


def test_the_issue_card_says_alertmanager_reported_it_and_links_the_generator(plan: Plan) -> None:
    release = receive(in_progress(plan), plan, FIRING).release
    message = compose(plan, "issue_card", release, NOW, {"number": 1})
    bk.validate(message.blocks)
    text = json.dumps(message.blocks)
    assert "Reported by Alertmanager" in text
    assert "<http://prometheus:9090/graph?g0.expr=job%3AHighErrorRate|HighErrorRate>" in text
    assert "value: _not given_" in text


def test_a_repeated_delivery_of_the_same_alert_changes_nothing(plan: Plan) -> None:
    first = receive(in_progress(plan), plan, FIRING).release
    again = receive(first, plan, FIRING)
    assert again.release == first
    assert again.events == () and again.effects == ()


def test_a_changed_alert_adds_a_line_to_its_issue_and_opens_no_other(plan: Plan) -> None:
    first = receive(in_progress(plan), plan, FIRING).release
    changed = {**FIRING, "annotations": {**FIRING["annotations"], "value": "2.4%"}}
    outcome = receive(first, plan, changed)
    assert len(outcome.release.issues) == 1
    [line] = posts(outcome, "alert_line")
    assert line.thread_of == "issue:1" and line.data["what"] == "updated"
    assert Refresh("issue:1") in outcome.effects
    message = compose(plan, "alert_line", outcome.release, NOW, line.data)
    bk.validate(message.blocks)
    assert "*Value:* 2.4%" in message.text or "*Value:* 2.4%" in json.dumps(message.blocks)
    once_more = receive(outcome.release, plan, changed)
    assert once_more.effects == (), "the same change twice is one line"


def test_two_alerts_in_one_group_open_two_issues(plan: Plan) -> None:
    one = alert("HighErrorRate", labels={"region": "region1"})
    two = alert("HighErrorRate", labels={"region": "region2"})
    outcome = receive(in_progress(plan), plan, one, two)
    assert [(i.number, i.region) for i in outcome.release.issues] == [(1, "region1"), (2, "region2")]
    assert {a.fingerprint: a.issue_number for a in outcome.release.alerts} == {
        one["fingerprint"]: 1,
        two["fingerprint"]: 2,
    }
    regrouped = receive(outcome.release, plan, two)  # Alertmanager regroups: the same alert alone
    assert regrouped.effects == () and len(regrouped.release.issues) == 2


def test_a_resolved_alert_adds_a_line_offering_resolve_and_leaves_the_issue_open(plan: Plan) -> None:
    first = receive(in_progress(plan), plan, FIRING).release
    ended = NOW + timedelta(minutes=3)
    resolved = {**FIRING, "status": "resolved", "endsAt": ended.isoformat()}
    outcome = receive(first, plan, resolved, now=ended)
    issue = outcome.release.issue(1)
    assert issue is not None and issue.status is IssueStatus.OPEN
    [line] = posts(outcome, "alert_line")
    assert line.thread_of is None and line.data["what"] == "resolved", "visible in the war room itself"
    message = compose(plan, "alert_line", outcome.release, ended, line.data)
    bk.validate(message.blocks)
    assert "resolved in Alertmanager at" in message.text
    buttons = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("issue_resolve", "r1:1")]
    assert "alert.resolved" in [e.kind for e in outcome.events]
    assert receive(outcome.release, plan, resolved, now=ended).effects == (), "a repeated resolution says nothing"


def test_a_rule_with_resolve_auto_resolves_the_issue(plan: Plan) -> None:
    slow = alert("SlowCheckout", labels={"team": "web"})
    first = receive(in_progress(plan), plan, slow).release
    outcome = receive(first, plan, {**slow, "status": "resolved", "endsAt": (NOW + timedelta(minutes=1)).isoformat()})
    issue = outcome.release.issue(1)
    assert issue is not None and issue.status is IssueStatus.RESOLVED and issue.resolved_by == "alertmanager"
    assert "Resolved in Alertmanager at 22:41 UTC" in issue.resolution
    assert posts(outcome, "issue_resolved")


def test_the_same_alert_after_people_resolved_its_issue_opens_a_new_one(plan: Plan) -> None:
    first = receive(in_progress(plan), plan, FIRING).release
    closed = resolve_issue(first, plan, PEOPLE, ResolveIssue(1, "rolled the config back"), NOW).release
    outcome = receive(closed, plan, {**FIRING, "startsAt": (NOW + timedelta(minutes=5)).isoformat()})
    assert [i.number for i in outcome.release.issues] == [1, 2]
    [link] = outcome.release.alerts
    assert link.issue_number == 2, "one link per fingerprint: it moves to the new issue"


def test_an_alert_that_matches_no_rule_is_ignored(plan: Plan) -> None:
    release = in_progress(plan)
    outcome = receive(release, plan, alert("SomethingElse"))
    assert outcome.release == release and outcome.effects == ()


@pytest.mark.parametrize(
    ("status", "now", "open_"),
    [
        (ReleaseStatus.SCHEDULED, T0 - timedelta(hours=3), False),  # before the first phase
        (ReleaseStatus.SCHEDULED, T0 - timedelta(hours=2), True),  # the pre-deployment phase starts
        (ReleaseStatus.SCHEDULED, T0 + timedelta(hours=4, seconds=1), False),  # after window.end
        (ReleaseStatus.IN_PROGRESS, T0 + timedelta(hours=6), True),  # running late: still in progress
        (ReleaseStatus.ROLLING_BACK, T0 + timedelta(hours=1), True),
        (ReleaseStatus.COMPLETED, T0 + timedelta(hours=1), False),
        (ReleaseStatus.ABORTED, T0 + timedelta(hours=1), False),
        (ReleaseStatus.POSTPONED, T0 + timedelta(hours=1), False),
    ],
)
def test_which_releases_take_alerts(plan: Plan, status: ReleaseStatus, now: Any, open_: bool) -> None:
    from dataclasses import replace

    release = replace(release_from_plan(plan), status=status)
    assert alert_window_open(release, plan, now) is open_
    outcome = receive_alerts(release, plan, notices(FIRING), now)
    assert bool(outcome.release.issues) is open_


def test_a_rollback_trigger_asks_the_rollback_question_once(plan: Plan) -> None:
    latency = alert("ApiLatency", annotations={"summary": "p95 620ms", "value": "0.62"})
    outcome = receive(in_progress(plan), plan, latency)
    assert outcome.release.issue(1).severity is Severity.HIGH  # type: ignore[union-attr]
    assert pending_evaluations(outcome.release) == (1,)
    [prompt] = posts(outcome, "rollback_evaluation")
    assert prompt.key == "rollback:evaluation:1"
    assert "alert.rollback_trigger" in [e.kind for e in outcome.events]
    changed = {**latency, "annotations": {"summary": "p95 700ms", "value": "0.70"}}
    again = receive(outcome.release, plan, changed)
    assert not posts(again, "rollback_evaluation"), "not asked twice while the question is open"
    answered = answer(again.release, plan, RM, AnswerEvaluation(1, PointChoice.CONTINUE), NOW)
    later = receive(answered.release, plan, {**changed, "annotations": {"summary": "p95 800ms", "value": "0.8"}})
    assert not posts(later, "rollback_evaluation"), "nor after it was answered, for the same alert"


def test_a_critical_rollback_trigger_is_asked_once_not_twice(plan: Plan) -> None:
    outcome = receive(in_progress(plan), plan, FIRING)
    assert len(posts(outcome, "rollback_evaluation")) == 1
    assert [d.kind for d in outcome.release.decisions].count(evaluation_kind(1)) == 1


def test_a_rollback_trigger_before_the_release_is_in_progress_is_asked_once_it_is(plan: Plan) -> None:
    latency = alert("ApiLatency")
    before = receive(release_from_plan(plan), plan, latency, now=T0 - timedelta(minutes=20))
    assert before.release.issues and not posts(before, "rollback_evaluation")
    started = start(before.release, plan, VP, T0, force_reason="test").release
    redelivered = receive(started, plan, latency, now=T0 + timedelta(minutes=1))
    assert len(posts(redelivered, "rollback_evaluation")) == 1


def test_the_prompt_shows_the_trigger_since_when_and_the_value(plan: Plan) -> None:
    latency = alert("ApiLatency", annotations={"summary": "p95 620ms"})
    release = receive(in_progress(plan), plan, latency).release
    message = compose(plan, "rollback_evaluation", release, NOW, {"issue": 1})
    bk.validate(message.blocks)
    text = json.dumps(message.blocks, ensure_ascii=False)
    assert f"Rollback trigger firing: {TRIGGER}" in text
    assert "*Current value:* _not given_" in text
    assert "firing since <!date^" in text
    assert "<@U0RM>, <@U0VP>" in text, "the release manager and the final authority"
    buttons = [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["rollback_evaluation_continue", "rollback_evaluation_execute"]
    valued = receive(in_progress(plan), plan, {**latency, "annotations": {"value": "0.62"}}).release
    assert "*Current value:* 0.62" in json.dumps(compose(plan, "rollback_evaluation", valued, NOW, {"issue": 1}).blocks)


def test_rolling_back_from_the_prompt_gives_the_trigger_as_the_reason(plan: Plan) -> None:
    release = receive(in_progress(plan), plan, alert("ApiLatency")).release
    outcome = answer(release, plan, VP, AnswerEvaluation(1, PointChoice.ROLLBACK), NOW)
    assert outcome.release.status is ReleaseStatus.ROLLING_BACK
    [event] = [e for e in outcome.events if e.kind == "release.rollback_started"]
    assert event.actor == "U0VP" and TRIGGER in event.data["reason"] and "ApiLatency" in event.data["reason"]


def test_grafanas_webhook_is_understood_with_its_values(plan: Plan) -> None:
    source, _, [notice] = parse_delivery(json.dumps(GRAFANA).encode())
    assert source == "grafana" and notice.value == "B=44.24, C=1"
    assert notice.starts_at.isoformat() == "2026-12-05T21:51:03.157076+00:00"
    outcome = receive_alerts(in_progress(plan), plan, [notice], NOW)
    [issue] = outcome.release.issues
    assert (issue.reporter, issue.component, issue.severity) == ("grafana", "database", Severity.MEDIUM)
    card = compose(plan, "issue_card", outcome.release, NOW, {"number": 1})
    assert "Reported by Grafana" in json.dumps(card.blocks)


def test_a_grafana_value_string_is_the_current_value() -> None:
    body = {**GRAFANA, "alerts": [{**GRAFANA["alerts"][0], "valueString": "[ var='B' value=14151.33 ]"}]}  # type: ignore[dict-item]
    assert parse_delivery(json.dumps(body).encode())[2][0].value == "[ var='B' value=14151.33 ]"


def test_an_alert_without_a_fingerprint_gets_one_from_its_labels() -> None:
    bare = {k: v for k, v in alert("DiskFilling", labels={"host": "db1"}).items() if k != "fingerprint"}
    first = parse_delivery(json.dumps(delivery(bare)).encode())[2][0].fingerprint
    assert first == parse_delivery(json.dumps(delivery(bare)).encode())[2][0].fingerprint and len(first) == 16


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (json.dumps({"status": "firing"}).encode(), "alerts: Field required"),
        (json.dumps({**delivery(alert("X")), "status": "burning"}).encode(), "status"),
        (json.dumps(delivery({**alert("X"), "labels": ["a"]})).encode(), "alerts.0.labels"),
        (json.dumps(delivery({**alert("X"), "startsAt": "yesterday"})).encode(), "alerts.0.startsAt"),
        (json.dumps(delivery({**alert("X"), "fingerprint": "<script>"})).encode(), "fingerprint"),
        (json.dumps({**delivery(alert("X")), "version": "3"}).encode(), "version '3' is not supported"),
        (b" " * (1024 * 1024 + 1), "larger than 1048576 bytes"),
    ],
)
def test_a_body_that_is_not_a_webhook_delivery_is_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=None) as caught:
        parse_delivery(body)
    assert reason in str(caught.value)


def test_text_from_alertmanager_is_shown_literally(plan: Plan) -> None:
    sneaky = alert("DiskFilling", annotations={"summary": "<!channel> disk full <@U0VP|boss>", "description": "a\x00b"})
    release = receive(in_progress(plan), plan, sneaky).release
    assert release.issue(1).error == "ab"  # type: ignore[union-attr]
    card = compose(plan, "issue_card", release, NOW, {"number": 1})
    assert "<!channel>" not in json.dumps(card.blocks) and "<!channel>" not in card.text


BAD_RULES = """
alerts:
  - match: {alertname: HighErrorRate}
    severity: urgent
    component: api
  - match: {alertname: ~"(unclosed"}
    severity: high
    component: api
  - match: {alertname: X}
    severity: low
    component: billing
  - match: {alertname: Y}
    severity: high
    component: api
    rollback_trigger: Error rate above 2%
  - match: {alertname: Z}
    severity: high
    component: api
    sevrity: low
  - match: {}
    severity: high
    component: api
  - match: {alertname: Z}
    severity: high
    component: api
    resolve: sometimes
"""


def test_check_lists_every_wrong_alert_rule_at_its_line(tmp_path: Any) -> None:
    from tests.test_cli import run

    path = tmp_path / "plan.yml"
    text = alert_plan_text().replace("alerts:", "alerts_unused:") + BAD_RULES
    path.write_text(text)
    result = run("check", str(path))
    assert result.returncode == 1, result.stdout
    lines = text.splitlines()

    def line_of(needle: str, after: int = 0) -> int:
        return next(n for n, line in enumerate(lines, start=1) if n > after and needle in line)

    start = line_of("alerts:", line_of("alerts_unused:"))
    expected = [
        (line_of("severity: urgent", start), "alerts[0].severity: 'urgent' is not a severity"),
        (line_of("(unclosed", start), "alerts[1].match: alertname: '~\"(unclosed\"' is not a valid regular expression"),
        (line_of("component: billing", start), "alerts[2].component: 'billing' is not in components"),
        (line_of("rollback_trigger: Error rate above 2%", start), "is not one of rollback.triggers"),
        (line_of("sevrity: low", start), "alerts[4].sevrity: unknown field"),
        (line_of("match: {}", start), "alerts[5].match"),
        (line_of("resolve: sometimes", start), "alerts[6].resolve"),
    ]
    for line, message in expected:
        assert any(f"plan.yml:{line}: " in got and message in got for got in result.stderr.splitlines()), (
            f"{line}: {message}\n{result.stderr}"
        )


def test_the_unifiedhealth_plan_maps_its_rollback_triggers_to_alerts() -> None:
    from tests.conftest import ROOT

    plan = parse_plan((ROOT / "examples" / "unifiedhealth-golive.yml").read_text(), "unifiedhealth-golive.yml")
    mapped = {rule.rollback_trigger for rule in plan.alerts if rule.rollback_trigger}
    assert {"Error rate > 1% for 5+ minutes", "API p95 > 500ms for 10+ minutes"} <= mapped
    assert mapped <= set(plan.rollback.triggers)


def test_an_alert_firing_again_while_its_issue_is_open_says_so_in_the_war_room(plan: Plan) -> None:
    first = receive(in_progress(plan), plan, FIRING).release
    ended = NOW + timedelta(minutes=2)
    resolved = receive(first, plan, {**FIRING, "status": "resolved", "endsAt": ended.isoformat()}, now=ended).release
    again_at = NOW + timedelta(minutes=9)
    outcome = receive(resolved, plan, {**FIRING, "startsAt": again_at.isoformat()}, now=again_at)
    assert len(outcome.release.issues) == 1
    [line] = posts(outcome, "alert_line")
    assert line.thread_of is None and line.data["what"] == "refired"
    assert outcome.release.alerts[0].status == "firing" and outcome.release.alerts[0].starts_at == again_at
    message = compose(plan, "alert_line", outcome.release, again_at, line.data)
    bk.validate(message.blocks)
    assert "is firing again since <!date^" in message.text
    assert [e.kind for e in outcome.events] == ["alert.refired"]


def test_alert_text_mentions_nobody_and_carries_no_invisible_format_characters(plan: Plan) -> None:
    # annotations are often filled from labels, which a scraped target can set: they must not ping or disguise
    sneaky = alert(
        "DiskFilling", annotations={"summary": "ask <@U0CTO> or <#C0SEC> \u202eevil", "description": "x\u200by"}
    )
    release = receive(in_progress(plan), plan, sneaky).release
    issue = release.issue(1)
    assert issue is not None and "\u202e" not in issue.impact and issue.error == "xy"
    card = compose(plan, "issue_card", release, NOW, {"number": 1})
    for text in (json.dumps(card.blocks, ensure_ascii=False), card.text):
        assert "<@U0CTO>" not in text and "<#C0SEC>" not in text, text
        assert "@U0CTO" in text, "the name is still shown, as text"
