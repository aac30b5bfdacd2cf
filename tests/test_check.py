"""`warroom check`: every template the plan can send renders, against a simulated run of the plan."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import ROOT, plan_text

UNIFIED = ROOT / "examples" / "unifiedhealth-golive.yml"


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_check_reports_an_undefined_name_in_an_inline_announcement_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = UNIFIED.read_text().replace("Pre-deployment ready: {{ release.name }}", "Ready: {{ release.nme }}")
    path = tmp_path / "plan.yml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    line = _line_of(text, "- id: pre-deployment-ready")
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:{line}: announcement 'pre-deployment-ready': 'release.nme' is undefined"
    ]


def test_check_reports_an_undefined_name_in_a_template_override_with_the_template_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "advance_notice.j2").write_text("# {{ release.name }}\n{{ releese.version }}\n")
    text = plan_text() + "templates_dir: templates\n"
    path = tmp_path / "plan.yml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    line = _line_of(text, "id: advance,")
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:{line}: announcement 'advance': template 'advance_notice' "
        f"({tmp_path / 'templates' / 'advance_notice.j2'}, line 2): 'releese' is undefined"
    ]


def test_check_renders_the_templates_events_send_with_the_data_they_get(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a postponed notice gets data.reason and data.start; data.reeson never exists
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "postponed.j2").write_text("# Postponed\nBecause {{ data.reeson }}\n")
    text = plan_text() + "templates_dir: templates\n"
    path = tmp_path / "plan.yml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    line = _line_of(text, "templates_dir:")
    assert err.startswith(f"{path}:{line}: template 'postponed' (")
    assert err.rstrip().endswith("'data.reeson' is undefined")


def test_check_reports_a_status_update_template_that_does_not_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = plan_text().replace("until: end}", "until: end, template: progress_note}") + "templates_dir: t\n"
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "progress_note.j2").write_text("{{ progress }}% · {{ next.nam }}\n")
    path = tmp_path / "plan.yml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    line = _line_of(text, "status_updates:")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"{path}:{line}: status updates: template 'progress_note' (")
    assert err[0].endswith("'next.nam' is undefined")


def test_check_reports_inline_text_that_is_not_a_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = plan_text().replace("template: advance_notice}", 'text: "{{ release.name "}')
    path = tmp_path / "plan.yml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    line = _line_of(text, "id: advance,")
    assert capsys.readouterr().err.startswith(f"{path}:{line}: announcement 'advance': text is not a valid template:")


def test_preview_of_a_plan_whose_template_fails_prints_the_problem_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(
        UNIFIED.read_text().replace("{{ release.version }}\n      Pre-", "{{ release.vrsion }}\n      Pre-")
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "preview", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:{_line_of(path.read_text(), '- id: pre-deployment-ready')}: "
        "announcement 'pre-deployment-ready': 'release.vrsion' is undefined"
    ]


@pytest.mark.parametrize(
    ("start", "says"),
    [
        (
            "2027-03-14T02:30:00",
            "does not exist in America/New_York: the clocks skip from 02:00 to 03:00 for DST; "
            "pick a time outside that hour",
        ),
        (
            "2026-11-01T01:30:00",
            "is ambiguous in America/New_York: the clocks go back and it happens twice; "
            "write 2026-11-01T01:30:00-04:00 (EDT) or 2026-11-01T01:30:00-05:00 (EST)",
        ),
    ],
)
def test_check_points_a_local_window_time_that_dst_makes_wrong_at_the_window_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str, says: str
) -> None:
    text = plan_text().replace("timezone: UTC", "timezone: America/New_York")
    text = text.replace("start: 2026-12-05T22:00:00Z", f"start: {start}")
    text = text.replace("end: 2026-12-06T02:00:00Z", f"end: {start[:10]}T05:00:00")
    path = tmp_path / "plan.yml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    line = _line_of(text, "window:")
    assert capsys.readouterr().err.splitlines() == [f"{path}:{line}: release.window.start: {start} {says}"]


def test_check_names_a_reserved_role_and_an_unknown_one_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        plan_text()
        .replace("  cto: [U0CTO]\n", "  cto: [U0CTO]\n  system: [U0SYS]\n")
        .replace("owner: dba}", "owner: dbas}")
    )
    path = tmp_path / "plan.yml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{path}:{_line_of(text, 'system: [U0SYS]')}: people.system: 'system' is a reserved name" in " ".join(err)
    [unknown] = [line for line in err if "'dbas'" in line]
    assert unknown.endswith(
        "phase owner 'dbas' is not a role in people (roles: cto, dba, devops_lead, oncall, "
        "qa_lead, release_manager, system, vp_engineering)"
    ), unknown


def test_check_names_an_undefined_name_under_an_index_as_it_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = UNIFIED.read_text().replace("Pre-deployment ready: {{ release.name }}", "Ready: {{ phases[0].nam }}")
    path = tmp_path / "plan.yml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    line = _line_of(text, "- id: pre-deployment-ready")
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:{line}: announcement 'pre-deployment-ready': 'phases[0].nam' is undefined"
    ]


def test_check_gives_t0_in_the_plans_zone_as_its_warnings_do(capsys: pytest.CaptureFixture[str]) -> None:
    interactive = ROOT / "examples" / "interactive-examples.yml"
    assert main(["check", str(interactive), str(UNIFIED)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("T0 Fri 25 Jul 2025 20:00 EDT (2025-07-26 00:00 UTC)"), out
    assert out[1].endswith("T0 Sat 05 Dec 2026 22:00 UTC"), out
