"""What an alert from Alertmanager (or Grafana) does to a release. Pure: (release, plan, alerts, now) → Outcome.

- A firing alert that matches one of the plan's `alerts:` rules opens an issue, as `/issue` would (the same
  card, the same paging for its severity), reported by Alertmanager. Its fingerprint is linked to that issue
  (in the database, one link per fingerprint and release): a repeat or regrouped delivery of the same alert
  updates that issue — a line in its thread when something changed — and never opens another while it is
  open. Once people resolved it, the same alert firing again opens a new issue.
- A resolved alert adds a line to the war room and offers *Resolve*; with the rule's `resolve: auto` it
  resolves the issue itself.
- A rule's `rollback_trigger`, firing while the release is in progress, asks the release manager and the
  final authority the rollback question (the prompt `bot.evaluation` posts for critical issues), once per
  issue.

Which release: every release whose alert window is open (`alert_window_open`) and whose plan has a rule
that matches. Anything else is ignored and says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot import evaluation
from bot.core.alert_rules import AlertRule, match_rule
from bot.domain import (
    ALERTMANAGER,
    GRAFANA,
    Actor,
    AlertLink,
    Effect,
    Event,
    IssueStatus,
    Outcome,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
)
from bot.issues import MAX_ERROR, MAX_IMPACT, ReportIssue, ResolveIssue, card_key, report_issue, resolve_issue
from bot.lifecycle import evaluation_kind
from bot.plan import Plan

FIRING = "firing"
RESOLVED = "resolved"
SOURCES: dict[str, Actor] = {"alertmanager": ALERTMANAGER, "grafana": GRAFANA}
SOURCE_NAMES = {"alertmanager": "Alertmanager", "grafana": "Grafana"}


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """One alert of a webhook delivery, as the rules need it (parsed by `bot.integrations.alertmanager`)."""

    status: str
    fingerprint: str
    starts_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ends_at: datetime | None = None
    generator_url: str = ""
    value: str = ""
    """The current value: Grafana's `valueString`/`values`, or a `value` annotation; "" when none is given."""
    source: str = "alertmanager"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "") or "alert"


def alert_window_open(release: Release, plan: Plan, now: datetime) -> bool:
    """Whether alerts count for this release now: it is in progress or rolling back, or it has not started
    and now is within its window — from its first planned phase (or the vote, or T0, whichever is earliest)
    to `window.end`. A finished, aborted or postponed release takes no alerts."""
    if release.status in {ReleaseStatus.IN_PROGRESS, ReleaseStatus.ROLLING_BACK}:
        return True
    if release.status is not ReleaseStatus.SCHEDULED:
        return False
    starts = [release.window_start, *(p.planned_start for p in release.phases)]
    if plan.go_no_go is not None:
        starts.append(plan.at(plan.go_no_go.at))
    return min(starts) <= now <= release.window_end


def wanted(plan: Plan, alerts: Sequence[AlertNotice]) -> bool:
    """Whether any of `alerts` matches one of the plan's rules."""
    return any(match_rule(plan.alerts, a.labels) is not None for a in alerts)


def receive_alerts(release: Release, plan: Plan, alerts: Sequence[AlertNotice], now: datetime) -> Outcome:
    """Apply a delivery's alerts in order (one transaction for them all)."""
    if not alert_window_open(release, plan, now):
        return Outcome(release)
    events: list[Event] = []
    effects: list[Effect] = []
    current = release
    for alert in alerts:
        outcome = receive_alert(current, plan, alert, now)
        current = outcome.release
        events += outcome.events
        effects += [e for e in outcome.effects if e not in effects]
    return Outcome(current, tuple(events), tuple(effects))


def receive_alert(release: Release, plan: Plan, alert: AlertNotice, now: datetime) -> Outcome:
    """One alert: open or update its issue when firing, note (or resolve) it when resolved."""
    rule = match_rule(plan.alerts, alert.labels)
    link = release.alert(alert.fingerprint)
    if alert.status == RESOLVED:
        return _resolved(release, plan, alert, link, rule, now)
    if rule is None:
        return Outcome(release)
    issue = release.issue(link.issue_number) if link is not None else None
    if link is None or issue is None or issue.status is not IssueStatus.OPEN:
        return _open(release, plan, alert, rule, now, previous=link)
    return _update(release, plan, alert, link, rule, now)


def _summary(alert: AlertNotice) -> str:
    return (alert.annotations.get("summary") or alert.annotations.get("message") or "").strip()


def _description(alert: AlertNotice) -> str:
    return (alert.annotations.get("description") or "").strip()


def _region(plan: Plan, rule: AlertRule, alert: AlertNotice) -> str | None:
    """The plan's region the rule's `region_label` names (any value when the plan lists no regions)."""
    if rule.region_label is None:
        return None
    value = alert.labels.get(rule.region_label, "").strip()
    if not value:
        return None
    if not plan.regions:
        return value[:64]
    return {r.lower(): r for r in plan.regions}.get(value.lower())


def _data(alert: AlertNotice, link: AlertLink) -> dict[str, object]:
    data: dict[str, object] = {
        "fingerprint": alert.fingerprint,
        "alertname": alert.name,
        "source": alert.source,
        "starts_at": alert.starts_at.isoformat(),
        "issue": link.issue_number,
    }
    if alert.value:
        data["value"] = alert.value
    if alert.generator_url:
        data["generator_url"] = alert.generator_url
    if link.trigger:
        data["rollback_trigger"] = link.trigger
    return data


def _open(
    release: Release, plan: Plan, alert: AlertNotice, rule: AlertRule, now: datetime, *, previous: AlertLink | None
) -> Outcome:
    """Report the issue as `/issue` would, reported by Alertmanager, and link the fingerprint to it."""
    summary = _summary(alert) or f"{alert.name} is firing"
    command = ReportIssue(
        severity=rule.severity,
        component=rule.component,
        impact=summary[:MAX_IMPACT],
        region=_region(plan, rule, alert),
        error=_description(alert)[:MAX_ERROR],
    )
    reported = report_issue(release, plan, SOURCES.get(alert.source, ALERTMANAGER), command, now)
    number = max(i.number for i in reported.release.issues)
    link = AlertLink(
        fingerprint=alert.fingerprint,
        issue_number=number,
        name=alert.name[:200],
        status=FIRING,
        starts_at=alert.starts_at,
        summary=_summary(alert),
        description=_description(alert),
        value=alert.value,
        generator_url=alert.generator_url,
        source=alert.source,
        trigger=rule.rollback_trigger or "",
    )
    updated = reported.release.with_alert(link)
    data = _data(alert, link)
    if previous is not None:
        data["previous_issue"] = previous.issue_number
    events = [
        *reported.events,
        Event("alert.firing", now, SOURCES.get(alert.source, ALERTMANAGER).user_id, f"issue:{number}", data),
    ]
    asked = _ask(updated, plan, link, now)
    return Outcome(asked.release, (*events, *asked.events), (*reported.effects, *asked.effects), reported.reply)


def _ask(release: Release, plan: Plan, link: AlertLink, now: datetime) -> Outcome:
    """A rollback trigger firing during the deployment: the rollback question, unless it was asked for this issue."""
    issue = release.issue(link.issue_number)
    if (
        not link.trigger
        or issue is None
        or issue.status is not IssueStatus.OPEN
        or release.status is not ReleaseStatus.IN_PROGRESS
        or release.decision(evaluation_kind(issue.number)) is not None
    ):
        return Outcome(release)
    asked = evaluation.ask(release, issue, now)
    event = Event(
        "alert.rollback_trigger",
        now,
        SOURCES.get(link.source, ALERTMANAGER).user_id,
        f"issue:{issue.number}",
        {"trigger": link.trigger, "fingerprint": link.fingerprint, "since": link.starts_at.isoformat()},
    )
    return Outcome(asked.release, (event, *asked.events), asked.effects)


def _line(release: Release, link: AlertLink, what: str, *, top: bool = False) -> tuple[AlertLink, Post]:
    """A line about the alert: in the issue card's thread, or (`top`) in the war room itself."""
    counted = replace(link, lines=link.lines + 1)
    key = f"{card_key(link.issue_number)}:alert:{link.fingerprint}:{counted.lines}"
    data = {"number": link.issue_number, "fingerprint": link.fingerprint, "what": what}
    post = Post("war_room", "alert_line", data, key=key, thread_of=None if top else card_key(link.issue_number))
    return counted, post


def _update(
    release: Release, plan: Plan, alert: AlertNotice, link: AlertLink, rule: AlertRule, now: datetime
) -> Outcome:
    """The same alert again while its issue is open: a line when something changed, nothing otherwise."""
    changed = replace(
        link,
        status=FIRING,
        starts_at=alert.starts_at,
        ends_at=None,
        summary=_summary(alert),
        description=_description(alert),
        value=alert.value,
        generator_url=alert.generator_url or link.generator_url,
        trigger=rule.rollback_trigger or "",
    )
    if changed == link:
        return _ask(release, plan, link, now)  # e.g. firing since before T0: asked once the release is in progress
    refired = link.status == RESOLVED or alert.starts_at != link.starts_at
    what = "refired" if refired else "updated"
    counted, post = _line(release, changed, what, top=refired)
    updated = release.with_alert(counted)
    data = _data(alert, counted)
    kind = "alert.refired" if refired else "alert.updated"
    event = Event(kind, now, SOURCES.get(alert.source, ALERTMANAGER).user_id, f"issue:{link.issue_number}", data)
    asked = _ask(updated, plan, counted, now)
    effects = (post, Refresh(card_key(link.issue_number)), *asked.effects)
    return Outcome(asked.release, (event, *asked.events), effects)


def _resolved(
    release: Release, plan: Plan, alert: AlertNotice, link: AlertLink | None, rule: AlertRule | None, now: datetime
) -> Outcome:
    """Alertmanager says the alert is over: a line offering *Resolve*, or (`resolve: auto`) the issue resolved."""
    if link is None or link.status == RESOLVED:
        return Outcome(release)
    ended = alert.ends_at or now
    closed = replace(link, status=RESOLVED, ends_at=ended)
    issue = release.issue(link.issue_number)
    actor = SOURCES.get(alert.source, ALERTMANAGER)
    data = {**_data(alert, closed), "ends_at": ended.isoformat()}
    if issue is None or issue.status is not IssueStatus.OPEN:
        # people resolved it already: remember the alert ended, say nothing more
        event = Event("alert.resolved", now, actor.user_id, f"issue:{link.issue_number}", data)
        return Outcome(release.with_alert(closed), (event,))
    if rule is not None and rule.resolve == "auto":
        note = f"Resolved in {SOURCE_NAMES.get(alert.source, 'Alertmanager')} at {ended:%H:%M} UTC"
        resolved = resolve_issue(release.with_alert(closed), plan, actor, ResolveIssue(issue.number, note), now)
        event = Event("alert.resolved", now, actor.user_id, f"issue:{issue.number}", {**data, "auto": True})
        return Outcome(resolved.release, (event, *resolved.events), resolved.effects)
    counted, post = _line(release, closed, "resolved", top=True)
    event = Event("alert.resolved", now, actor.user_id, f"issue:{issue.number}", data)
    return Outcome(release.with_alert(counted), (event,), (post, Refresh(card_key(issue.number))))
