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
    war_room, stakeholders = plan.status_updates
    assert len(plan.status_update_times(war_room)) == 33  # 22:00 to 06:00 every 15 minutes
    assert (stakeholders.channel, stakeholders.template) == ("announcements", "progress_update")
    assert len(plan.status_update_times(stakeholders)) == 16  # 22:15 to 02:00 in #deployments
    assert len(plan.status_update_times()) == 49


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


def test_a_value_yaml_cannot_read_is_shown_with_its_excerpt_and_line() -> None:
    text = plan_text().replace("  version: v1.2.3", "  version: !semver v1.2.3")
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "tag.yml")
    [problem] = caught.value.problems
    assert "could not determine a constructor for the tag '!semver'" in problem.message
    # the excerpt with its caret, under the line the tag is on, as the Python parser words it
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "!semver" in row)
    assert f"line {line}, column" in problem.message
    assert "version: !semver v1.2.3\n" in problem.message and problem.message.rstrip().endswith("^")


def test_yaml_syntax_errors_are_worded_as_before_whichever_parser_reads_the_plan() -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan("release:\n  id: [unclosed\n", "syntax.yml")
    assert [str(p) for p in caught.value.problems] == [
        "syntax.yml:3: YAML syntax: expected ',' or ']', but got '<stream end>'"
    ]


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


# --- time as people mean it: whole days keep the wall-clock time in the plan's zone ---------------------

NY = "America/New_York"


def _ny_plan(start: str, end: str, extra: str = "") -> str:
    text = plan_text().replace("timezone: UTC", f"timezone: {NY}")
    text = text.replace("start: 2026-12-05T22:00:00Z", f"start: {start}").replace(
        "end: 2026-12-06T02:00:00Z", f"end: {end}"
    )
    return text + extra


@pytest.mark.parametrize(
    ("t0", "offset", "expected_local"),
    [
        # T0 20:00 EST on 7 Nov 2026; DST ended on 1 Nov
        ("2026-11-07T20:00:00", "-7d", "2026-10-31T20:00:00-04:00"),  # 20:00 EDT, not 21:00
        ("2026-11-07T20:00:00", "-6d", "2026-11-01T20:00:00-05:00"),
        ("2026-11-07T20:00:00", "-1d2h", "2026-11-06T18:00:00-05:00"),  # day shift, then 2 elapsed hours
        ("2026-11-07T20:00:00", "-7d2h", "2026-10-31T18:00:00-04:00"),
        ("2026-11-07T20:00:00", "-168h", "2026-10-31T21:00:00-04:00"),  # hours stay elapsed time
        ("2026-11-07T20:00:00", "+1d", "2026-11-08T20:00:00-05:00"),
        ("2026-11-07T20:00:00", "-30m", "2026-11-07T19:30:00-05:00"),
        # T0 20:00 EDT on 16 Mar 2027; DST began on 14 Mar
        ("2027-03-16T20:00:00", "-3d", "2027-03-13T20:00:00-05:00"),
        ("2027-03-16T20:00:00", "-72h", "2027-03-13T19:00:00-05:00"),
        # a day shift onto a time the clocks skip moves forward by the gap; onto a repeated one takes the first
        ("2027-03-15T02:30:00", "-1d", "2027-03-14T03:30:00-04:00"),
        ("2026-11-02T01:30:00", "-1d", "2026-11-01T01:30:00-04:00"),
    ],
)
def test_day_offsets_keep_the_wall_clock_time_in_the_plans_zone(t0: str, offset: str, expected_local: str) -> None:
    start = datetime.fromisoformat(t0)
    plan = parse_plan(_ny_plan(t0, (start + timedelta(hours=3)).isoformat()), "ny.yml")
    assert plan.at(parse_offset(offset)) == datetime.fromisoformat(expected_local)
    assert plan.at(parse_offset(offset)).astimezone(plan.tz).isoformat() == expected_local


def test_a_utc_plan_counts_days_as_24_hours() -> None:
    plan = parse_plan(plan_text(), "utc.yml")
    assert plan.at(parse_offset("-7d")) == datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def test_the_plans_announcements_and_vote_use_day_offsets_in_local_time() -> None:
    plan = parse_plan(_ny_plan("2026-11-07T20:00:00", "2026-11-07T23:00:00"), "ny.yml")
    advance = next(a for a in plan.announcements if a.id == "advance")
    assert plan.at(advance.at).astimezone(plan.tz).hour == 20


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "start",
            "2026-11-01T01:30:00",
            "release.window.start: 2026-11-01T01:30:00 is ambiguous in America/New_York: the clocks go back and "
            "it happens twice; write 2026-11-01T01:30:00-04:00 (EDT) or 2026-11-01T01:30:00-05:00 (EST)",
        ),
        (
            "start",
            "2027-03-14T02:30:00",
            "release.window.start: 2027-03-14T02:30:00 does not exist in America/New_York: the clocks skip from "
            "02:00 to 03:00 for DST; pick a time outside that hour",
        ),
        (
            "end",
            "2027-03-14T02:15:00",
            "release.window.end: 2027-03-14T02:15:00 does not exist in America/New_York: the clocks skip from "
            "02:00 to 03:00 for DST; pick a time outside that hour",
        ),
    ],
)
def test_a_local_time_that_is_ambiguous_or_skipped_is_refused_at_its_line(field: str, value: str, message: str) -> None:
    day = value[:10]
    start, end = f"{day}T00:30:00", f"{day}T04:00:00"
    text = _ny_plan(value if field == "start" else start, value if field == "end" else end)
    text = text.replace("window: {start: ", "window:\n    {start: ").replace(", end: ", ",\n     end: ")
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "dst.yml")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if f"{field}: {value}" in row)
    assert [str(p) for p in caught.value.problems] == [f"dst.yml:{line}: {message}"]


def test_an_ambiguous_local_time_written_with_its_offset_is_accepted() -> None:
    plan = parse_plan(_ny_plan("2026-11-01T01:30:00-05:00", "2026-11-01T04:00:00"), "ny.yml")
    assert plan.t0 == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


RUNBOOK = """
signoffs:
  - {role: release_manager, criterion: All deployment steps complete}
  - {role: auditor, criterion: Evidence filed}
  - {role: release_manager, criterion: Twice}
handoff: {at: +8h, to: day_lead, oncall: [nobody]}
follow_ups:
  - {at: +24h, owner: ghost, task: 24-hour post-deployment review}
"""


def test_sign_offs_handoff_and_follow_ups_name_roles_the_plan_has() -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(plan_text() + RUNBOOK, "runbook.yml")
    messages = [p.message for p in info.value.problems]
    assert any("sign-off role 'auditor' is not a role" in m for m in messages)
    assert any("'release_manager' is listed twice" in m for m in messages)
    assert any("handoff receiver 'day_lead' is not a role" in m for m in messages)
    assert any("handoff on-call role 'nobody' is not a role" in m for m in messages)
    assert any("follow-up owner 'ghost' is not a role" in m for m in messages)
    assert all(p.file == "runbook.yml" and p.line > 1 for p in info.value.problems)


def test_a_runbook_plan_loads_its_checklists() -> None:
    text = plan_text().replace(
        "owner: dba}", "owner: dba, tasks: [Execute database backup (final), Verify schema changes]}", 1
    )
    text += "success_criteria: [Error rate < 0.1%]\nsignoffs: [{role: dba, criterion: Schema verified}]\n"
    text += "handoff: {at: +8h, to: oncall}\nlinks: [{name: Grafana, url: 'https://grafana.example.com/d/api'}]\n"
    plan = parse_plan(text, "runbook.yml")
    tasks = [p.tasks for p in plan.phases if p.tasks]
    assert tasks == [["Execute database backup (final)", "Verify schema changes"]]
    assert plan.signoffs[0].role == "dba" and plan.handoff is not None and plan.handoff.to == "oncall"
    assert plan.success_criteria == ["Error rate < 0.1%"] and plan.links[0].name == "Grafana"
