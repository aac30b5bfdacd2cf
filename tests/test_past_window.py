"""A plan whose window has passed: `check` warns, `warroom run` loads it as history and sends nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import check
from storage import repo
from storage.db import create_engine, sessionmaker
from tests.bot_process import running_bot
from tests.conftest import ROOT, T0, plan_text
from tests.fake_slack import FakeSlack

INTERACTIVE = ROOT / "examples" / "interactive-examples.yml"


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_check_warns_about_a_window_that_has_ended_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(plan_text())
    assert check([str(path)], now=T0 + timedelta(days=30)) == 0
    out = capsys.readouterr()
    assert ": ok" in out.out
    assert out.err.splitlines() == [
        f"{path}:{_line_of(plan_text(), 'window:')}: warning: the window ended Sun 06 Dec 2026 02:00 UTC, 29 days "
        "ago: `warroom run` loads it as history (no vote, no messages); move release.window to the new date"
    ]


def test_check_of_the_july_2025_example_warns_with_the_real_clock(capsys: pytest.CaptureFixture[str]) -> None:
    assert check([str(INTERACTIVE)]) == 0
    err = capsys.readouterr().err
    assert f"{INTERACTIVE}:{_line_of(INTERACTIVE.read_text(), 'window:')}: warning: the window ended " in err
    assert "Fri 25 Jul 2025 23:30 EDT" in err


def test_check_warns_when_the_window_starts_sooner_than_its_vote_and_notices_allow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.yml"
    text = plan_text()
    path.write_text(text)
    assert check([str(path)], now=T0 - timedelta(minutes=20)) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:{_line_of(text, 'id: advance,')}: warning: announcement 'advance' was due Sat 28 Nov 2026 "
        "22:00 UTC (-7d), past its grace of 30m: it will be recorded as skipped, not sent",
        f"{path}:{_line_of(text, 'id: assembly,')}: warning: announcement 'assembly' was due Sat 05 Dec 2026 "
        "20:00 UTC (-2h), past its grace of 30m: it will be recorded as skipped, not sent",
        f"{path}:{_line_of(text, '  at: -30m')}: warning: the vote was to open Sat 05 Dec 2026 21:30 UTC (-30m), "
        "10m ago: it opens when the plan is loaded, 15m before its deadline",
    ]


def test_check_says_when_even_the_vote_deadline_has_passed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yml"
    text = plan_text()
    path.write_text(text)
    assert check([str(path)], now=T0 - timedelta(minutes=2)) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"{path}:{_line_of(text, '  deadline: -5m')}: warning: the vote's deadline Sat 05 Dec 2026 21:55 UTC (-5m) "
        "has passed: the vote opens when the plan is loaded and missing votes are recorded as No-Go 5 minutes later"
    )


def test_check_of_a_plan_well_ahead_says_nothing_more(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(plan_text())
    assert check([str(path)], now=T0 - timedelta(days=8)) == 0
    assert capsys.readouterr().err == ""


async def test_run_of_an_ended_window_loads_it_as_history_and_sends_nothing(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'past.db'}"
    for run in (1, 2):  # a restart must not record anything twice
        async with running_bot(fake_slack, INTERACTIVE, database_url, tmp_path / f"run{run}.log") as bot:
            await bot.wait_for_output("loaded as history")
            await asyncio.sleep(2)  # the first delivery and timer passes run meanwhile
        lines = [line for line in bot.output().splitlines() if "interactive-examples-2025-07" in line]
        assert len([line for line in lines if "loaded as history" in line]) == 1, bot.output()
    assert fake_slack.posts() == [] and fake_slack.of("conversations.open") == []

    engine = create_engine(database_url)
    async with sessionmaker(engine)() as session:
        timeline = await repo.get_timeline(session=session, release_id="interactive-examples-2025-07")
        outbox = await repo.outbox(session=session, release_id="interactive-examples-2025-07")
        release = await repo.get_release(session=session, release_id="interactive-examples-2025-07")
    await engine.dispose()
    kinds = Counter(e.kind for e in timeline)
    assert not [k for k in kinds if k.startswith(("vote.", "release.started", "release.not_started"))], kinds
    skipped = [e for e in timeline if e.kind == "message.skipped"]
    assert sorted(e.subject for e in skipped) == sorted(
        f"announcement:{name}"
        for name in (
            "initial-notification",
            "reminder",
            "final-reminder",
            "maintenance-active",
            "progress-22h",
            "operational",
            "complete-new-features",
        )
    )
    assert all("the window ended Fri 25 Jul 2025 23:30 EDT" in str(e.data["reason"]) for e in skipped)
    assert {item.status for item in outbox} == {"skipped"}
    assert release is not None and release.vote_opened_at is None and release.decisions == ()
    assert datetime.now(UTC) > release.window_end
