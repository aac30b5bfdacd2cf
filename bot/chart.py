"""The plan-vs-actual timeline chart of a release, as a PNG: drawn from the export's data (`bot.report`).

Each phase is a row with two bars: the plan (light) above what happened (solid, coloured by outcome).
Issues are marked by severity on the time axis, decisions (Go / No-Go, rollback) as labelled lines, T0
as a black line; times are in the plan's zone, which the axis names.

matplotlib is imported here only, with its Agg backend (no display), so nothing else pays for it.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

from bot.timeparse import zone

WIDTH_PX = 1400
DPI = 100
ROW_PX = 56
"""Height of one phase's row; the chart grows with the plan."""
BASE_PX = 330
"""Title, the issue strip, the axis and the legend."""

PLANNED = "#c9d6e8"
OUTCOME = {
    "on_time": "#2e9d4f",
    "late": "#e8912d",
    "failed": "#d3322f",
    "skipped": "#9e9e9e",
    "in_progress": "#2f6fd0",
}
SEVERITY = {"critical": "#b00020", "high": "#e8590c", "medium": "#f2c200", "low": "#5c7cfa"}
DECISION = {"go": "#2e9d4f", "no_go": "#d3322f", "rollback": "#8e44ad", "continue": "#607d8b"}


def chart_size(data: dict[str, Any]) -> tuple[int, int]:
    """(width, height) in pixels of the chart of `data`."""
    return WIDTH_PX, BASE_PX + ROW_PX * max(1, len(data["phases"]))


def _outcome(phase: dict[str, Any]) -> str | None:
    status = phase["status"]
    if status == "done":
        late = phase["late_seconds"]
        return "late" if late is not None and late >= 60 else "on_time"
    if status in {"failed", "skipped", "in_progress"}:
        return str(status)
    return None


def _decisions(data: dict[str, Any]) -> list[tuple[datetime, str, str]]:
    """(when, label, colour) of the go/no-go decisions and the rollback events."""
    marks = []
    for d in data["decisions"]:
        if d["kind"] == "go_no_go" and d["outcome"] in {"go", "no_go"}:
            label = "Go" if d["outcome"] == "go" else "No-Go"
            marks.append((datetime.fromisoformat(d["at"]), label, DECISION[d["outcome"]]))
        elif d["outcome"] in {"rollback", "continue"}:
            label = "roll back" if d["outcome"] == "rollback" else "continue"
            marks.append((datetime.fromisoformat(d["at"]), label, DECISION[d["outcome"]]))
    for e in data["rollback"]:
        if e["kind"] in {"release.rollback_started", "release.rolled_back"}:
            label = "rollback started" if e["kind"] == "release.rollback_started" else "rolled back"
            marks.append((datetime.fromisoformat(e["at"]), label, DECISION["rollback"]))
    return marks


def _span(data: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    r = data["release"]
    times = [datetime.fromisoformat(r["window_start"])]
    for p in data["phases"]:
        times += [datetime.fromisoformat(p[k]) for k in ("planned_start", "planned_end") if p[k]]
        times += [datetime.fromisoformat(p[k]) for k in ("started_at", "finished_at") if p[k]]
    times += [datetime.fromisoformat(i["reported_at"]) for i in data["issues"]]
    times += [at for at, _, _ in _decisions(data)]
    if not data["phases"]:
        times.append(datetime.fromisoformat(r["window_end"]))
    first, last = min(times), max(times)
    margin = max((last - first) * 0.03, timedelta(minutes=5))
    return first - margin, last + 2 * margin  # room on the right for "12m late"


def render_chart(data: dict[str, Any], now: datetime | None = None) -> bytes:
    """The chart of an export (`bot.report.report`) as PNG bytes, `chart_size(data)` pixels.

    `now` ends the bar of a phase still running (by default the release's end, else its last event)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    r = data["release"]
    tz = zone(r["timezone"])
    phases = data["phases"]
    ended = r["ended_at"] or (data["timeline"][-1]["at"] if data["timeline"] else r["window_start"])
    until = now or datetime.fromisoformat(ended)
    width, height = chart_size(data)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0.2, (90 / height), 0.77, 1 - (90 + 95) / height))
    first, last = _span(data, until)

    def num(at: datetime) -> float:
        return float(mdates.date2num(at))  # type: ignore[no-untyped-call]

    rows = len(phases)
    for n, p in enumerate(phases):
        y = rows - 1 - n
        start, end = datetime.fromisoformat(p["planned_start"]), datetime.fromisoformat(p["planned_end"])
        ax.barh(y + 0.2, num(end) - num(start), left=num(start), height=0.36, color=PLANNED, edgecolor="#8aa2c4")
        outcome = _outcome(p)
        if outcome is None:
            continue
        began = datetime.fromisoformat(p["started_at"]) if p["started_at"] else None
        finished = datetime.fromisoformat(p["finished_at"]) if p["finished_at"] else None
        if began is None:
            # marked done or skipped without a start: a short mark at the time it was reported
            began = (finished or until) - timedelta(minutes=2)
        stop = finished or until
        ax.barh(
            y - 0.2,
            max(num(stop) - num(began), 1 / 1440),
            left=num(began),
            height=0.36,
            color=OUTCOME[outcome],
            hatch="//" if outcome == "skipped" else None,
        )
        if p["against_plan"]:
            ax.text(num(stop), y - 0.2, f"  {p['against_plan']}", va="center", fontsize=8, color="#333333")
    ax.set_yticks(range(rows))
    ax.set_yticklabels([_label(p) for p in reversed(phases)], fontsize=9)
    ax.set_ylim(-0.9, max(rows, 1) - 0.05)
    if not phases:
        ax.text(0.5, 0.5, "no phases", transform=ax.transAxes, ha="center", color="#777777")

    top = max(rows, 1) - 0.35
    for issue in data["issues"]:
        x = num(datetime.fromisoformat(issue["reported_at"]))
        colour = SEVERITY.get(issue["severity"], "#555555")
        ax.axvline(x, color=colour, linewidth=1, alpha=0.5, linestyle=":")
        ax.plot([x], [top], marker="v", markersize=11, color=colour, clip_on=False)
        ax.text(x, top + 0.25, f"#{issue['number']}", ha="center", fontsize=8, color=colour, clip_on=False)
    for at, label, colour in _decisions(data):
        ax.axvline(num(at), color=colour, linewidth=1.6, linestyle="--")
        ax.text(num(at), -0.75, f" {label}", color=colour, fontsize=9, fontweight="bold", rotation=0, va="bottom")
    t0 = datetime.fromisoformat(r["window_start"])
    ax.axvline(num(t0), color="black", linewidth=2)
    ax.text(num(t0), top + 0.25, "T0 ", ha="right", fontsize=9, fontweight="bold", clip_on=False)

    ax.set_xlim(num(first), num(last))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=tz, minticks=6, maxticks=14))  # type: ignore[no-untyped-call]
    ax.grid(axis="x", color="#e6e6e6")
    ax.set_axisbelow(True)
    local = t0.astimezone(tz)
    ax.set_xlabel(f"{local:%a %d %b %Y}, times in {r['timezone']} ({local:%Z})", fontsize=9)
    fig.suptitle(f"{r['name']} {r['version']} — plan vs actual ({_words(r['status'])})", fontsize=13, y=0.985)

    legend = [
        Patch(facecolor=PLANNED, edgecolor="#8aa2c4", label="planned"),
        Patch(facecolor=OUTCOME["on_time"], label="done on time"),
        Patch(facecolor=OUTCOME["late"], label="done late"),
        Patch(facecolor=OUTCOME["failed"], label="failed"),
        Patch(facecolor=OUTCOME["skipped"], hatch="//", label="skipped"),
        Patch(facecolor=OUTCOME["in_progress"], label="in progress"),
        *(
            Line2D([], [], marker="v", linestyle="", color=c, markersize=9, label=f"issue: {s}")
            for s, c in SEVERITY.items()
        ),
        Line2D([], [], color="black", linewidth=2, label="T0"),
    ]
    fig.legend(handles=legend, loc="lower center", ncol=6, fontsize=8, frameon=False, bbox_to_anchor=(0.55, 0.0))
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _label(phase: dict[str, Any]) -> str:
    name = str(phase["name"])
    return name if len(name) <= 34 else name[:33] + "…"


def _words(value: object) -> str:
    return str(value).replace("_", " ")
