"""The post-mortem report: plan vs actual per phase, issues, votes, pages, decisions and the timeline."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.domain import Event, Release
from bot.rules import progress


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def report(release: Release, timeline: list[Event]) -> dict[str, Any]:
    """Everything about one release as plain data."""
    phases = []
    for p in release.phases:
        late = (p.finished_at - p.planned_end).total_seconds() if p.finished_at else None
        phases.append(
            {
                "id": p.id,
                "name": p.name,
                "status": p.status.value,
                "planned_start": _iso(p.planned_start),
                "planned_end": _iso(p.planned_end),
                "started_at": _iso(p.started_at),
                "finished_at": _iso(p.finished_at),
                "started_by": p.started_by,
                "finished_by": p.finished_by,
                "late_seconds": late,
                "note": p.note,
            }
        )
    return {
        "release": {
            "id": release.id,
            "name": release.name,
            "version": release.version,
            "status": release.status.value,
            "window_start": _iso(release.window_start),
            "window_end": _iso(release.window_end),
            "started_at": _iso(release.started_at),
            "ended_at": _iso(release.ended_at),
            "progress": progress(release),
            "attempt": release.attempt,
        },
        "phases": phases,
        "issues": [
            {
                "number": i.number,
                "severity": i.severity.value,
                "component": i.component,
                "region": i.region,
                "impact": i.impact,
                "error": i.error,
                "status": i.status.value,
                "reporter": i.reporter,
                "reported_at": _iso(i.reported_at),
                "investigator": i.investigator,
                "resolved_at": _iso(i.resolved_at),
                "resolved_by": i.resolved_by,
                "resolution": i.resolution,
                "seconds_to_resolve": (i.resolved_at - i.reported_at).total_seconds() if i.resolved_at else None,
            }
            for i in release.issues
        ],
        "pages": [
            {
                "number": p.number,
                "level": p.level,
                "targets": list(p.targets),
                "reason": p.reason,
                "status": p.status.value,
                "created_at": _iso(p.created_at),
                "acked_by": p.acked_by,
                "acked_at": _iso(p.acked_at),
                "seconds_to_ack": (p.acked_at - p.created_at).total_seconds() if p.acked_at else None,
            }
            for p in release.pages
        ],
        "votes": [
            {"voter": b.voter, "role": b.role, "vote": b.vote.value, "reason": b.reason, "at": _iso(b.at)}
            for b in release.ballots
        ],
        "decisions": [
            {
                "kind": d.kind,
                "outcome": d.outcome,
                "rationale": d.rationale,
                "decided_by": d.decided_by,
                "at": _iso(d.at),
                "overrode_tally": d.overrode_tally,
            }
            for d in release.decisions
        ],
        "timeline": [
            {"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "subject": e.subject, "data": e.data} for e in timeline
        ],
    }


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def _md(value: object) -> str:
    return "—" if value in (None, "") else str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(data: dict[str, Any]) -> str:
    r = data["release"]
    out = [
        f"# {r['name']} {r['version']} — post-mortem report",
        "",
        f"- Release: `{r['id']}` · status **{r['status']}** · progress {r['progress']}%",
        f"- Window: {r['window_start']} to {r['window_end']}",
        f"- Started: {_md(r['started_at'])} · ended: {_md(r['ended_at'])}",
        *(
            [
                f"- Attempt {r['attempt']}: the release was postponed by a No-Go and rescheduled; phases and "
                "votes below are this attempt's, earlier ones are in the decisions and the timeline"
            ]
            if r["attempt"] > 1
            else []
        ),
        "",
        "## Phases: plan vs actual",
        "",
        "| phase | status | planned start | planned end | started | finished | late (s) | by | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in data["phases"]:
        out.append(
            f"| {_md(p['name'])} (`{p['id']}`) | {p['status']} | {p['planned_start']} | {p['planned_end']} | "
            f"{_md(p['started_at'])} | {_md(p['finished_at'])} | {_md(p['late_seconds'])} | "
            f"{_md(p['finished_by'] or p['started_by'])} | {_md(p['note'])} |"
        )
    sections: list[tuple[str, list[str], str]] = [
        (
            "Issues",
            [
                "number",
                "severity",
                "component",
                "region",
                "impact",
                "status",
                "investigator",
                "seconds_to_resolve",
                "resolution",
            ],
            "issues",
        ),
        ("Pages", ["number", "level", "targets", "reason", "status", "acked_by", "seconds_to_ack"], "pages"),
        ("Votes", ["voter", "role", "vote", "reason", "at"], "votes"),
        ("Decisions", ["kind", "outcome", "rationale", "decided_by", "at", "overrode_tally"], "decisions"),
    ]
    for title, columns, key in sections:
        out += ["", f"## {title}", ""]
        if not data[key]:
            out.append("None.")
            continue
        out.append("| " + " | ".join(columns) + " |")
        out.append("|" + "---|" * len(columns))
        for row in data[key]:
            out.append("| " + " | ".join(_md(row[c]) for c in columns) + " |")
    out += ["", "## Timeline", ""]
    for e in data["timeline"]:
        who = f" by {e['actor']}" if e["actor"] else ""
        subject = f" `{e['subject']}`" if e["subject"] else ""
        details = f" — {json.dumps(e['data'], ensure_ascii=False)}" if e["data"] else ""
        out.append(f"- {e['at']} **{e['kind']}**{subject}{who}{details}")
    return "\n".join(out) + "\n"
