"""`/release report`: the post-mortem report and its chart, uploaded to the war room.

The command only asks for the upload: an outbox item of kind `upload`. The dispatcher renders the report
from the state at delivery (so it is as fresh as the moment it goes), uploads both files with Slack's
external upload flow (`files.getUploadURLExternal`, the bytes, `files.completeUploadExternal`) and posts
the summary as the files' comment. It is retried and recorded like every other message: never lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.core.text import slack_escape
from bot.domain import Actor, Event, Outcome, Post, Release
from bot.permissions import Action, authorize
from bot.plan import Plan

if TYPE_CHECKING:
    from storage.repo import OutboxItem

UPLOAD_KIND = "upload"
"""The outbox kind of an upload: its item carries no template to render, the report is built at delivery."""
REPORT_TEMPLATE = "post_mortem_report"
REPORT_KEY_PREFIX = "report:"


def request_report(release: Release, plan: Plan, actor: Actor, now: datetime) -> Outcome:
    """Queue the upload of the report and chart to the war room; the reply says what will happen."""
    authorize(plan, actor, Action.REQUEST_REPORT)
    key = f"{REPORT_KEY_PREFIX}{now:%Y%m%dT%H%M%S.%fZ}"
    post = Post("war_room", REPORT_TEMPLATE, {"requested_by": actor.user_id}, key=key, kind=UPLOAD_KIND)
    event = Event("report.requested", now, actor.user_id, key)
    return Outcome(
        release,
        (event,),
        (post,),
        "The post-mortem report (Markdown) and its timeline chart (PNG) are on their way to the war room. "
        "If Slack refuses them you will be told here; `warroom export` gives the same report on the server.",
    )


@dataclass(frozen=True, slots=True)
class ReportFiles:
    markdown: bytes
    chart: bytes
    summary: str
    """The files' comment in the war room (mrkdwn)."""
    markdown_name: str
    chart_name: str

    def uploads(self, title: str) -> list[dict[str, Any]]:
        """`file_uploads` for slack_sdk's `files_upload_v2`."""
        return [
            {"content": self.markdown, "filename": self.markdown_name, "title": f"{title} — post-mortem report"},
            {
                "content": self.chart,
                "filename": self.chart_name,
                "title": f"{title} — plan vs actual",
                "alt_txt": f"{title}: phases planned and actual, issues and decisions on the time axis",
            },
        ]


def report_files(release: Release, timeline: list[Event], plan: Plan, outbox: list[OutboxItem]) -> ReportFiles:
    """The Markdown report, the chart and the summary, from the release as it is now."""
    from bot.chart import render_chart
    from bot.report import report, to_markdown

    data = report(release, timeline, plan, outbox)
    stem = f"{release.id}-post-mortem"
    return ReportFiles(
        markdown=to_markdown(data).encode(),
        chart=render_chart(data),
        summary=summary(data),
        markdown_name=f"{stem}.md",
        chart_name=f"{stem}.png",
    )


def summary(data: dict[str, Any]) -> str:
    """`📋 Post-mortem report: *UnifiedHealth v2.4.0* — completed. Phases: 9 of 9 done (2 late) …`"""
    r = data["release"]
    phases = data["phases"]
    done = [p for p in phases if p["status"] == "done"]
    late = [p for p in done if (p["late_seconds"] or 0) >= 60]
    issues = data["issues"]
    open_issues = [i for i in issues if i["status"] == "open"]
    decision = next((d for d in reversed(data["decisions"]) if d["kind"] == "go_no_go"), None)
    parts = [
        f"Phases: {len(done)} of {len(phases)} done" + (f" ({len(late)} late)" if late else ""),
        f"issues: {len(issues)}" + (f" ({len(open_issues)} still open)" if open_issues else ""),
        f"pages: {len(data['pages'])}",
    ]
    if decision is not None:
        parts.append("decision: " + {"go": "Go", "no_go": "No-Go"}.get(decision["outcome"], decision["outcome"]))
    signed = [s for s in data["signoffs"]["roles"] if s["status"] == "signed"]
    if data["signoffs"]["roles"]:
        parts.append(f"sign-offs: {len(signed)} of {len(data['signoffs']['roles'])}")
    name = slack_escape(f"{r['name']} {r['version']}")
    return (
        f":clipboard: Post-mortem report: *{name}* — {r['status'].replace('_', ' ')}. "
        + "; ".join(parts)
        + ". The full record (Markdown) and the plan-vs-actual chart are attached."
    )
