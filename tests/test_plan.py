"""The plan file: offsets, time zones, cross-references and line-numbered problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.plan import PlanError, load_plan, parse_plan
from bot.timeparse import format_offset, parse_duration, parse_offset
from tests.conftest import ROOT, plan_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-7d", timedelta(days=-7)),
        ("+15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("-45s", timedelta(seconds=-45)),
        ("0", timedelta(0)),
        (0, timedelta(0)),
        ("-0m", timedelta(0)),
        ("+6h", timedelta(hours=6)),
        ("2d3h4m5s", timedelta(days=2, hours=3, minutes=4, seconds=5)),
    ],
)
def test_offsets_parse_as_written_in_plans(text: object, expected: timedelta) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["15", 15, "1x", "m", "", "--1h", "1h-30m", "1.5h", True, None, "h1"])
def test_bad_offsets_say_how_to_write_one(text: object) -> None:
    with pytest.raises(ValueError, match=r"offset|unit"):
        parse_offset(text)


def test_durations_must_be_positive() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    with pytest.raises(ValueError, match="positive"):
        parse_duration("-30m")


def test_offsets_format_back() -> None:
    assert format_offset(timedelta(hours=-2)) == "-2h"
    assert format_offset(timedelta(hours=1, minutes=30)) == "+1h30m"
    assert format_offset(timedelta(0)) == "0"


@pytest.mark.parametrize("name", ["unifiedhealth-golive.yml", "interactive-examples.yml", "demo.yml"])
def test_example_plans_are_valid(name: str) -> None:
    plan, _ = load_plan(ROOT / "examples" / name)
    assert plan.phases and plan.announcements


def test_unifiedhealth_example_covers_the_reference() -> None:
    plan, _ = load_plan(ROOT / "examples" / "unifiedhealth-golive.yml")
    ids = [p.id for p in plan.phases]
    assert "db-migration" in ids and "stability" in ids and "handoff" in ids
    assert {p.region for p in plan.phases if p.region} == {"region1", "region2", "region3", "region4"}
    assert [lvl.level for lvl in plan.escalation] == [1, 2, 3, 4]
    assert plan.go_no_go is not None and plan.go_no_go.final_authority == "vp_engineering"
    assert plan.at(plan.go_no_go.at) == datetime(2026, 12, 5, 21, 30, tzinfo=UTC)
    assert "Data corruption detected" in plan.rollback.triggers
    templates = {a.template for a in plan.announcements}
    assert {
        "advance_notice",
        "reminder",
        "final_notice",
        "team_assembly",
        "deployment_start",
        "final_status",
    } <= templates
    assert len(plan.status_update_times()) == 33  # 22:00 to 06:00 every 15 minutes


def test_local_window_in_july_new_york_is_utc_next_day() -> None:
    plan, _ = load_plan(ROOT / "examples" / "interactive-examples.yml")
    assert plan.t0 == datetime(2025, 7, 26, 0, 0, tzinfo=UTC)  # 20:00 EDT (UTC-4)
    assert plan.release.window.end == datetime(2025, 7, 26, 3, 30, tzinfo=UTC)


def test_local_window_in_january_new_york_uses_standard_time() -> None:
    text = plan_text().replace("timezone: UTC", "timezone: America/New_York")
    text = text.replace("start: 2026-12-05T22:00:00Z", "start: 2027-01-15T20:00:00").replace(
        "end: 2026-12-06T02:00:00Z", "end: 2027-01-15T23:00:00"
    )
    plan = parse_plan(text, "ny.yml")
    assert plan.t0 == datetime(2027, 1, 16, 1, 0, tzinfo=UTC)  # EST is UTC-5


def test_a_local_time_skipped_by_dst_is_refused() -> None:
    text = plan_text().replace("timezone: UTC", "timezone: America/New_York")
    text = text.replace("start: 2026-12-05T22:00:00Z", "start: 2027-03-14T02:30:00").replace(
        "end: 2026-12-06T02:00:00Z", "end: 2027-03-14T05:00:00"
    )
    with pytest.raises(PlanError, match="does not exist in America/New_York"):
        parse_plan(text, "dst.yml")


def test_every_problem_is_listed_with_its_line() -> None:
    text = plan_text()
    text = text.replace("owner: dba}", "owner: dbas}")  # unknown role
    text = text.replace("start: +30m, duration: 30m", "start: +30x, duration: 30m")  # bad offset
    text = text.replace("timezone: UTC", "timezone: Mars/Olympus")  # bad zone
    text = text.replace("final_authority: vp_engineering", "final_authority: vp")  # unknown role
    text = text.replace("template: team_assembly", "template: team_assembled")  # unknown template
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "bad.yml")
    problems = caught.value.problems
    lines = text.splitlines()
    messages = [str(p) for p in problems]
    assert len(problems) >= 5, messages

    def line_of(needle: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if needle in line)

    def find(fragment: str) -> int:
        return next(p.line for p in problems if fragment in p.message)

    assert find("'dbas'") == line_of("owner: dbas")
    assert find("'+30x'") == line_of("+30x")
    assert find("Mars/Olympus") == line_of("Mars/Olympus")
    assert find("'vp'") == line_of("final_authority: vp")
    assert find("team_assembled") == line_of("team_assembled")
    assert all(m.startswith("bad.yml:") for m in messages)


def test_duplicate_phase_ids_and_keys_are_reported() -> None:
    text = plan_text().replace("id: deploy-region2", "id: deploy-region1")
    with pytest.raises(PlanError, match="used twice"):
        parse_plan(text, "dup.yml")
    with pytest.raises(PlanError, match="duplicate key 'version'"):
        parse_plan(plan_text().replace("version: v1.2.3", "version: v1.2.3\n  version: v2"), "dupkey.yml")


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan("release:\n  id: [unclosed\n", "syntax.yml")
    assert caught.value.problems[0].line >= 2
    assert "YAML syntax" in caught.value.problems[0].message


def test_unknown_fields_are_reported_not_ignored() -> None:
    text = plan_text().replace("  version: v1.2.3", "  version: v1.2.3\n  verison: typo")
    with pytest.raises(PlanError, match="unknown field"):
        parse_plan(text, "typo.yml")


def test_announcement_needs_exactly_one_of_template_or_text() -> None:
    text = plan_text().replace("template: advance_notice}", "template: advance_notice, text: hi}")
    with pytest.raises(PlanError, match="exactly one of template"):
        parse_plan(text, "ann.yml")



def test_templates_dir_must_exist_and_overrides_count_as_templates(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "custom_hello.j2").write_text("Hello {{ release.name }}")
    text = plan_text().replace("template: advance_notice}", "template: custom_hello}") + "templates_dir: ./templates\n"
    path = tmp_path / "plan.yml"
    path.write_text(text)
    plan, _ = load_plan(path)
    assert plan.templates_dir == str((tmp_path / "templates").resolve())
    path.write_text(text.replace("./templates", "./missing"))
    with pytest.raises(PlanError, match="not a folder"):
        load_plan(path)


def test_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read the plan"):
        load_plan(tmp_path / "nope.yml")


def test_the_plan_example_in_the_readme_passes_check(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The plan file") :]
    example = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml"))]
    (tmp_path / "templates").mkdir()  # the example names ./templates, which must exist
    path = tmp_path / "plan.yml"
    path.write_text(example)
    plan, _ = load_plan(path)
    assert plan.id == "uh-2-4-0" and plan.go_no_go is not None and plan.go_no_go.final_authority == "vp_engineering"
