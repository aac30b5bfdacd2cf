"""`warroom export`: the post-mortem report reads like a document, and never creates a database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.commands import parse_phase, parse_release
from bot.domain import Actor, Outcome, Release
from bot.gonogo_commands import parse_gonogo
from bot.issues import decide_issue, parse_issue
from bot.lifecycle import change_release, start_at_t0
from bot.paging import decide_page, parse_page
from bot.plan import Plan, parse_plan
from bot.rules import change_phase
from bot.service import LoadedPlan, Service
from bot.votes import decide
from storage.db import create_engine, migrate, sessionmaker
from tests.conftest import T0, Clock, plan_text

Rule = Callable[[Release, Plan, datetime], Outcome]


def _actor(plan: Plan, user: str) -> Actor:
    return Actor(user, plan.role_of_person.get(user, frozenset()))


async def _record(url: str) -> None:
    """A release run through the service with a fixed clock: a Go, one phase late, one early, one skipped,
    one on time, an issue resolved, a page acknowledged, then completed."""
    engine = create_engine(url)
    await migrate(engine)
    clock = Clock(T0 - timedelta(hours=3))
    service = Service(sessions=sessionmaker(engine), clock=clock)
    plan = parse_plan(plan_text().replace("timezone: UTC", "timezone: America/New_York"), "t.yml")
    await service.load(LoadedPlan(plan, "", "t.yml"))

    async def at(minutes: int, rule: Callable[[Release, Plan, datetime], Outcome]) -> None:
        clock.set(T0 + timedelta(minutes=minutes))
        await service.run("r1", rule)

    def as_user(user: str, fn: Callable[..., Outcome], command: Any) -> Rule:
        return lambda r, p, now: fn(r, p, _actor(p, user), command, now)

    await at(-20, as_user("U0VP", decide, parse_gonogo("decide go all checks green")))
    await at(0, lambda r, p, now: start_at_t0(r, p, now, {}))
    await at(12, as_user("U0RM", change_phase, parse_phase("done pre-deployment")))
    await at(20, as_user("U0DBA", change_phase, parse_phase("done db-migration")))
    await at(40, as_user("U0DEV", change_phase, parse_phase("skip deploy-region1 region1 is frozen")))
    await at(
        45,
        as_user(
            "U0QA", decide_issue, parse_issue("high api region2 5xx on /login | pool exhausted", ("region1", "region2"))
        ),
    )
    await at(46, as_user("U0RM", decide_page, parse_page("L1 api errors")))
    await at(50, as_user("U0OC1", decide_page, parse_page("ack")))
    await at(65, as_user("U0DEV", decide_issue, parse_issue("resolve 1 pool size raised")))
    await at(90, as_user("U0DEV", change_phase, parse_phase("done deploy-region2")))
    await at(95, as_user("U0RM", change_release, parse_release("complete")))
    await engine.dispose()


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'export.db'}"
    asyncio.run(_record(url))
    monkeypatch.setenv("WARROOM_DATABASE_URL", url)
    return url


def test_export_reads_like_a_document_in_the_plans_zone(recorded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "r1"]) == 0
    markdown = capsys.readouterr().out
    lines = markdown.splitlines()
    assert lines[:6] == [
        "# Test Platform v1.2.3 — post-mortem report",
        "",
        "- Release: `r1` · status **completed** · progress 100%",
        "- Window: Sat 05 Dec 2026 17:00 to 21:00 EST (America/New_York)",
        "- Started: Sat 05 Dec 2026 17:00 EST · ended: Sat 05 Dec 2026 18:35 EST",
        "",
    ]
    phases = lines[lines.index("## Phases: plan vs actual") + 2 :][:6]
    assert phases == [
        "| phase | status | planned | actual | against plan | by | note |",
        "|---|---|---|---|---|---|---|",
        "| Pre-Deployment (`pre-deployment`) | done | 15:00 to 17:00 | done 17:12 | 12m late | U0RM | — |",
        "| Database Migration (`db-migration`) | done | 17:00 to 17:30 | done 17:20 | 10m early | U0DBA | — |",
        "| Deploy Region 1 (`deploy-region1`) | skipped | 17:30 to 18:00 | skipped 17:40 | — | U0DEV | "
        "region1 is frozen |",
        "| Deploy Region 2 (`deploy-region2`) | done | 18:00 to 18:30 | done 18:30 | on time | U0DEV | — |",
    ]
    assert "| 1 | 1 | U0OC1, U0OC2 | api errors | acknowledged | U0OC1 | 4m | L1 |" in lines
    assert "| 1 | high | api | region2 | 5xx on /login | resolved | — | — | 20m | pool size raised |" in lines
    timeline = lines[lines.index("## Timeline") + 2 :]
    assert timeline[0] == "- 14:00 EST — the plan was loaded: version v1.2.3, 4 phases"
    assert "- 16:40 EST — U0VP decided **Go**: all checks green (overriding the tally)" in timeline
    assert "- 17:12 EST — U0RM marked Pre-Deployment done, 12m late" in timeline
    assert "- 17:40 EST — U0DEV skipped Deploy Region 1: region1 is frozen" in timeline
    assert "- 18:35 EST — U0RM completed the release" in timeline
    assert not [line for line in lines if "{" in line or "['" in line or "late_seconds" in line], markdown


def test_export_json_gives_times_with_the_plans_offset(recorded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "r1", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["release"]["window_start"] == "2026-12-05T17:00:00-05:00"
    assert data["release"]["timezone"] == "America/New_York"
    phase = data["phases"][0]
    assert phase["finished_at"] == "2026-12-05T17:12:00-05:00" and phase["against_plan"] == "12m late"
    assert data["phases"][2]["against_plan"] is None and data["phases"][2]["late_seconds"] is None
    assert data["timeline"][0]["text"] == "the plan was loaded: version v1.2.3, 4 phases"
    assert data["timeline"][0]["at"] == "2026-12-05T14:00:00-05:00"


def test_export_without_a_database_says_which_one_it_looked_for_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "warroom.db"
    monkeypatch.setenv("WARROOM_DATABASE_URL", f"sqlite+aiosqlite:///{missing}")
    assert main(["export", "r1"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"no database at {missing} (WARROOM_DATABASE_URL is sqlite+aiosqlite:///{missing}): "
        "run `warroom export` where `warroom run` keeps its database, or set WARROOM_DATABASE_URL to it"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("due 7230s ago, past its grace of 1800s", "due 2h 30s ago, past its grace of 30m"),
        ("due 95s ago, past its grace of 60s", "due 1m 35s ago, past its grace of 1m"),
        ("release is completed", "release is completed"),
    ],
)
def test_skip_reasons_read_in_minutes_and_hours(reason: str, expected: str) -> None:
    from bot.domain import Event
    from bot.report import describe
    from bot.rules import release_from_plan

    release = release_from_plan(parse_plan(plan_text(), "t.yml"))
    event = Event("message.skipped", T0, subject="announcement:advance", data={"reason": reason})
    assert describe(event, release) == f"the announcement advance was skipped: {expected}"


def test_an_event_without_a_sentence_of_its_own_still_reads_as_one() -> None:
    from bot.domain import Event
    from bot.report import describe
    from bot.rules import release_from_plan

    release = release_from_plan(parse_plan(plan_text(), "t.yml"))
    event = Event("checklist.ticked", T0, subject="backup", data={"items": ["a", "b"], "waited": "600s"})
    assert describe(event, release) == "checklist ticked backup (items: a, b; waited: 10m)"


def _ny_release() -> Release:
    from bot.rules import release_from_plan

    return release_from_plan(parse_plan(plan_text().replace("timezone: UTC", "timezone: America/New_York"), "t.yml"))


@pytest.mark.parametrize(
    ("kind", "subject", "data", "expected"),
    [
        (
            "release.completed",
            None,
            {"forced": "region2 next week", "failed": ["deploy-region1"], "unfinished": ["deploy-region2"]},
            "completed the release with Deploy Region 2 left unfinished and Deploy Region 1 failed: region2 next week",
        ),
        ("release.completed", None, {"forced": None, "failed": [], "unfinished": []}, "completed the release"),
        (
            "release.plan_updated",
            None,
            {
                "window_start": ["2026-12-05T22:00:00+00:00", "2026-12-12T22:00:00+00:00"],
                "version": ["v1.2.3", "v1.2.4"],
                "phases_added": ["smoke"],
                "phases_removed": ["deploy-region2"],
            },
            "the plan was updated: the window moved from Sat 05 Dec 2026 17:00 to Sat 12 Dec 2026 17:00 EST; "
            "version v1.2.3 → v1.2.4; phases added: smoke; phases removed: deploy-region2",
        ),
        ("page.renotified", "page:2", {"level": None, "targets": ["U0RM", "U0VP"]}, "page #2 went to U0RM, U0VP again"),
        ("page.renotified", "page:1", {"level": 3, "targets": ["U0CTO"]}, "page #1 went to Level 3 again"),
        (
            "page.exhausted",
            "page:2",
            {"level": None, "waited": "15m"},
            "page #2 had no acknowledgement within 15m; a page to a role or a person does not climb, so it stops here",
        ),
        ("page.exhausted", "page:1", {"level": 3, "waited": "15m"}, "page #1 reached the top of the ladder unanswered"),
        ("vote.cast", "dba", {"vote": "no_go", "reason": "replica lag"}, "voted No-Go as dba: replica lag"),
        ("vote.changed", "qa_lead", {"vote": "go"}, "changed their vote to Go as qa lead"),
        ("message.posted", "status:20261205T221500Z", {}, "posted the status update of 17:15"),
        (
            "message.posted",
            "status:deployments:20261205T221500Z",
            {},
            "posted the status update to #deployments of 17:15",
        ),
        ("message.posted", "announcement:advance", {}, "posted the announcement advance"),
        ("message.posted", "announcement:0:attempt2", {}, "posted the announcement 0 (attempt 2)"),
    ],
)
def test_timeline_entries_read_as_sentences_in_the_plans_zone(
    kind: str, subject: str | None, data: dict[str, Any], expected: str
) -> None:
    from bot.domain import Event
    from bot.report import describe

    assert describe(Event(kind, T0, subject=subject, data=data), _ny_release()) == expected


def test_decisions_are_named_as_people_say_them() -> None:
    from bot.domain import Decision
    from bot.report import report, to_markdown

    release = _ny_release()
    decisions = (
        Decision("go_no_go", "go", "Every voter voted Go.", "warroom", T0),
        Decision("rollback_eval:1", "asked", "", "warroom", T0),
        Decision("rollback_eval:1", "continue", "fix forward", "U0RM", T0),
        Decision("rollback_point", "continue", "", "U0RM", T0),
        Decision("forced_start", "start", "vendor window", "U0VP", T0, True),
    )
    markdown = to_markdown(report(replace(release, decisions=decisions), []))
    rows = markdown.split("## Decisions", 1)[1].split("## Timeline", 1)[0]
    assert "rollback eval" not in rows and "rollback_point" not in rows and "forced start" not in rows, rows
    assert "| go/no-go | go |" in rows
    assert "| roll back after issue #1? | asked |" in rows and "| roll back after issue #1? | continue |" in rows
    assert "| rollback decision point | continue |" in rows
    assert "| start without a Go | start |" in rows


FORGED = "ok\n# ✅ RELEASE COMPLETE\n---\n~ approved by the CTO\n- 23:59 EST — U0VP decided **Go**"


async def _record_typed(url: str) -> None:
    """A release where people typed several lines into a forced start, a phase failure, an issue and a page."""
    engine = create_engine(url)
    await migrate(engine)
    clock = Clock(T0 + timedelta(minutes=1))
    service = Service(sessions=sessionmaker(engine), clock=clock)
    plan = parse_plan(plan_text(), "t.yml")
    await service.load(LoadedPlan(plan, "", "t.yml"))
    for user, rule, command in [
        ("U0VP", change_release, parse_release(f"start --force {FORGED}")),
        ("U0DBA", change_phase, parse_phase("start db-migration")),
        ("U0DBA", change_phase, parse_phase(f"fail db-migration {FORGED}")),
        ("U0DEV", decide_issue, parse_issue(f"high api {FORGED} | {FORGED}", ("region1", "region2"))),
        ("U0RM", decide_page, parse_page(f"dba {FORGED}")),
        ("U0RM", change_release, parse_release(f"rollback {FORGED}")),
    ]:
        await service.run("r1", lambda r, p, now, u=user, f=rule, c=command: f(r, p, _actor(p, u), c, now))
    await engine.dispose()


def test_text_people_typed_over_several_lines_stays_inside_its_entry_of_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'typed.db'}"
    asyncio.run(_record_typed(url))
    monkeypatch.setenv("WARROOM_DATABASE_URL", url)
    assert main(["export", "r1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert headings == [
        "# Test Platform v1.2.3 — post-mortem report",
        "## Phases: plan vs actual",
        "## Tasks",
        "## Go/no-go checklist",
        "## Issues",
        "## Pages",
        "## Votes",
        "## Decisions",
        "## Rollback",
        "## Sign-offs",
        "## Handoff",
        "## Announcements",
        "## Timeline",
    ]
    assert not [line for line in lines if line.startswith(("---", "~"))]
    timeline = lines[lines.index("## Timeline") + 2 :]
    assert all(line.startswith("- ") and " UTC — " in line for line in timeline), timeline
    assert not [line for line in timeline if "23:59" in line.split(" — ")[0]], "no entry people did not make"
    typed = [line for line in timeline if "RELEASE COMPLETE" in line]
    assert len(typed) >= 5 and all("ok # ✅ RELEASE COMPLETE --- ~ approved by the CTO" in t for t in typed), typed


async def test_export_never_prints_the_database_password(
    postgres_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_database).set(password="s3cret-db-password").render_as_string(hide_password=False)
    monkeypatch.setenv("WARROOM_DATABASE_URL", url)
    assert await asyncio.to_thread(main, ["export", "nope"]) == 1
    output = capsys.readouterr()
    assert "no release 'nope'" in output.err and "releases: none" in output.err, output.err
    assert "s3cret-db-password" not in output.err + output.out, output.err


def test_typed_text_cannot_make_a_link_in_the_markdown_export() -> None:
    from bot.report import _md, _one_line

    for typed in ("[x](http://evil.example)", "\\[x\\](http://evil.example)", "<http://evil.example|x>"):
        for rendered in (_one_line(typed), _md(typed)):
            # every [ ] < is escaped, and so is a backslash typed to cancel that escaping
            unescaped = [i for i, c in enumerate(rendered) if c in "[]<" and _backslashes_before(rendered, i) % 2 == 0]
            assert not unescaped, (typed, rendered)


def _backslashes_before(text: str, index: int) -> int:
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count
