"""`warroom preview`: what the plan will really post, rendered as if everything goes to plan."""

from __future__ import annotations

import pytest

from bot.cli import main
from tests.conftest import ROOT

UNIFIED = ROOT / "examples" / "unifiedhealth-golive.yml"
INTERACTIVE = ROOT / "examples" / "interactive-examples.yml"
DEMO = ROOT / "examples" / "demo.yml"


def _sections(out: str) -> dict[str, str]:
    """Each message's header line → its text."""
    parts: dict[str, str] = {}
    head = ""
    for line in out.splitlines():
        if line.startswith("=== "):
            head = line
            parts[head] = ""
        elif head:
            parts[head] += line + "\n"
    return parts


def _preview(path: object, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["preview", str(path)]) == 0
    return _sections(capsys.readouterr().out)


def test_preview_shows_the_vote_opening_the_deadline_reminder_and_the_decision_point_prompt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sections = _preview(UNIFIED, capsys)
    heads = list(sections)
    vote = next(h for h in heads if "go/no-go vote opens" in h)
    reminder = next(h for h in heads if "deadline reminder" in h)
    prompt = next(h for h in heads if "rollback decision point" in h)
    assert vote.startswith("=== 2026-12-05 21:30 UTC | #deployment-war-room |")
    assert (
        reminder.startswith("=== 2026-12-05 21:55 UTC | #deployment-war-room |") and "if votes are missing" in reminder
    )
    assert prompt.startswith("=== 2026-12-06 00:00 UTC | #deployment-war-room |")
    assert "GO/NO-GO" in sections[vote].upper() and "Go] [⛔ No-Go]" in sections[vote]
    assert "Roll back" in sections[prompt]
    assert heads == sorted(heads, key=lambda h: h[4:20])


def test_preview_renders_messages_after_the_window_as_if_the_release_completed_on_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for path in (UNIFIED, INTERACTIVE):
        sections = _preview(path, capsys)
        final = next(text for head, text in sections.items() if "final-status" in head or "complete-new" in head)
        assert "Status: *COMPLETED*" in final, final
        assert "still running" not in final and "IN PROGRESS" not in final


def test_a_final_status_due_at_the_windows_end_reports_the_release_completed_then(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo posts its final status at +1h, the window's end: as planned, the release completed then."""
    sections = _preview(DEMO, capsys)
    [final] = [text for head, text in sections.items() if "19:00 CET | #warroom-demo | announcement:3" in head]
    assert "Status: *COMPLETED*" in final and "End: Tue 01 Dec 2026 19:00 CET" in final, final
    assert "still running" not in final and "IN PROGRESS" not in final


def test_preview_names_the_status_updates_first_and_last_time_and_shows_the_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sections = _preview(INTERACTIVE, capsys)
    status = [head for head in sections if "status update" in head]
    assert status == [
        "=== 2025-07-26 00:00 UTC | 2025-07-25 20:00 EDT | #interactive-examples-deploy | status update every 30m "
        "from 2025-07-25 20:00 to 2025-07-25 23:30 EDT (8 updates); the first:"
    ]
    assert "Fri 25 Jul 2025 20:00 EDT" in sections[status[0]]


def test_preview_of_a_utc_plan_prints_each_time_once(capsys: pytest.CaptureFixture[str]) -> None:
    sections = _preview(UNIFIED, capsys)
    assert "=== 2026-11-28 22:00 UTC | #deployments | announcement:advance-notice" in sections
    assert not [head for head in sections if head.count("UTC") > 1 and "status update" not in head]
