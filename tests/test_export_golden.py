"""The export of a recorded release, compared with tests/golden/; the JSON Schema; the chart.

Regenerate the golden files after an intended change of the export with
`WARROOM_UPDATE_GOLDEN=1 python -m pytest tests/test_export_golden.py`, and read the diff before committing.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from bot.chart import chart_size, render_chart
from bot.cli import main
from bot.domain import Event, PhaseStatus, SignOff, SignOffStatus
from bot.plan import parse_plan
from bot.report import SCHEMA_VERSION, report, to_markdown
from bot.rules import release_from_plan
from tests.conftest import ROOT, T0, plan_text
from tests.recorded_release import record, recorded_plan_text

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((ROOT / "schemas" / "export-v1.schema.json").read_text())
UPDATE = os.environ.get("WARROOM_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def recorded_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('golden') / 'recorded.db'}"
    asyncio.run(record(url))
    return url


def _export(url: str, *args: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("WARROOM_DATABASE_URL", url)
    assert main(["export", "r1", *args]) == 0
    return capsys.readouterr().out


def _compare(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual)
    assert path.exists(), f"{path} is missing: run with WARROOM_UPDATE_GOLDEN=1 to write it"
    assert actual == path.read_text(), f"the export differs from {path}; if intended, regenerate it (see above)"


def test_the_markdown_export_of_the_recorded_release_is_the_golden_one(
    recorded_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _compare("export.md", _export(recorded_url, monkeypatch=monkeypatch, capsys=capsys))


def test_the_json_export_of_the_recorded_release_is_the_golden_one_and_valid(
    recorded_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _export(recorded_url, "--format", "json", monkeypatch=monkeypatch, capsys=capsys)
    data = json.loads(text)
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert data["schema_version"] == SCHEMA_VERSION
    _compare("export.json", text)


def test_the_recorded_export_holds_the_whole_day(
    recorded_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(_export(recorded_url, "--format", "json", monkeypatch=monkeypatch, capsys=capsys))
    pre = data["phases"][0]
    assert (pre["tasks_done"], pre["tasks_left"]) == (2, 1) and pre["tasks"][2]["task"] == "Notify support"
    [issue] = data["issues"]
    assert (issue["seconds_to_investigate"], issue["seconds_to_resolve"]) == (180, 1200)
    [page] = data["pages"]
    assert page["seconds_to_ack"] == 240 and page["levels_reached"] == [1]
    assert [s["status"] for s in data["signoffs"]["roles"]] == ["signed", "signed", "signed"]
    assert data["signoffs"]["approved_at"] == "2026-12-05T18:50:00-05:00"
    assert data["signoffs"]["deployment_status"] == "success"
    assert data["handoff"]["accepted_by"] == "U0DEV"
    delayed = [a["name"] for a in data["announcements"] if a["delayed"]]
    assert "status update of 17:30" in delayed
    skipped = [a["name"] for a in data["announcements"] if a["status"] == "skipped"]
    assert "announcement advance" in skipped
    assert [e["kind"] for e in data["rollback"]] == ["rollback.decision_point"]


def _plain_export() -> dict[str, Any]:
    plan = parse_plan(recorded_plan_text(), "t.yml")
    return report(release_from_plan(plan), [], plan, [])


def test_the_schema_takes_a_release_where_nothing_happened_yet() -> None:
    jsonschema.validate(_plain_export(), SCHEMA, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("schema_version"),
        lambda d: d.update(schema_version="2.0"),
        lambda d: d["phases"][0].update(status="finished"),
        lambda d: d["phases"][0].pop("planned_start"),
        lambda d: d["release"].update(progress="100%"),
        lambda d: d["signoffs"]["roles"][0].update(status="maybe"),
        lambda d: d.update(surprise=True),
        lambda d: d["phases"][0]["tasks"][0].update(number=0),
    ],
)
def test_the_schema_refuses_a_broken_export(breakage: Any) -> None:
    data = copy.deepcopy(_plain_export())
    breakage(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())


def test_the_schema_file_is_the_version_the_export_says() -> None:
    assert SCHEMA["properties"]["schema_version"]["pattern"] == rf"^{SCHEMA_VERSION.split('.')[0]}\.\d+$"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_refusals_waiting_roles_and_tasks_left_open_are_in_the_report() -> None:
    plan = parse_plan(recorded_plan_text(), "t.yml")
    release = release_from_plan(plan)
    phases = tuple(
        replace(p, status=PhaseStatus.DONE, finished_at=T0) if p.id == "pre-deployment" else p for p in release.phases
    )
    release = replace(
        release,
        phases=phases,
        signoffs=(SignOff("dba", SignOffStatus.REFUSED, "U0DBA", T0, "replica lag 40s"),),
    )
    done = Event("phase.done", T0, "U0RM", "pre-deployment", {"open_tasks": ["Notify support"]})
    data = report(release, [done], plan, [])
    assert [(s["role"], s["status"]) for s in data["signoffs"]["roles"]] == [
        ("qa_lead", "waiting"),
        ("dba", "refused"),
        ("vp_engineering", "waiting"),
    ]
    assert data["phases"][0]["open_at_finish"] == ["Notify support"]
    markdown = to_markdown(data)
    assert "| dba | Replication healthy, no data loss | refused | U0DBA | 17:00 | replica lag 40s |" in markdown
    assert "| Pre-Deployment | 0 of 3 | 3 | Notify support |" in markdown
    assert "marked Pre-Deployment done, with 1 task open (Notify support)" in markdown


def test_typed_text_cannot_make_a_link_in_the_markdown() -> None:
    from bot.domain import Issue, Severity

    plan = parse_plan(plan_text(), "t.yml")
    issue = Issue(1, Severity.HIGH, "api", "[approve here](https://evil.example) <https://evil.example>", "U0QA", T0)
    markdown = to_markdown(report(replace(release_from_plan(plan), issues=(issue,)), [], plan, []))
    assert "\\[approve here\\](https://evil.example) \\<https://evil.example>" in markdown
    assert "[approve here](" not in markdown.replace("\\[approve here\\](", "")


# --- the chart ---------------------------------------------------------------------------------------------


def _colours(png: bytes) -> int:
    return len(_palette(Image.open(io.BytesIO(png))))


def _palette(image: Image.Image) -> set[tuple[int, ...]]:
    return {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 24) or []}


def test_the_chart_of_the_recorded_release_is_a_png_of_its_size_with_something_drawn(
    recorded_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "chart.png"
    data = json.loads(
        _export(recorded_url, "--format", "json", "--chart", str(path), monkeypatch=monkeypatch, capsys=capsys)
    )
    png = path.read_bytes()
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == chart_size(data) == (1400, 330 + 56 * 4)
    assert _colours(png) > 50, "bars, markers and text in several colours"
    # the actual bar of Pre-Deployment (done 12 minutes late) is orange somewhere in the picture
    assert (232, 145, 45) in _palette(image)


def test_a_release_with_phases_draws_them_and_one_without_does_not(tmp_path: Path) -> None:
    data = _plain_export()
    with_phases = render_chart(data)
    without = render_chart({**data, "phases": []})
    assert Image.open(io.BytesIO(without)).size == chart_size({"phases": []})
    assert with_phases != without
    assert _colours(with_phases) > _colours(without)


def test_the_chart_is_drawn_in_the_plans_zone_whatever_the_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    data = _plain_export()
    drawn = {}
    for machine in ("UTC", "Asia/Tokyo"):
        monkeypatch.setenv("TZ", machine)
        time.tzset()
        drawn[machine] = render_chart(data)
    monkeypatch.undo()
    time.tzset()
    assert drawn["UTC"] == drawn["Asia/Tokyo"], "the machine's zone changed the chart"
    utc = {**data, "release": {**data["release"], "timezone": "UTC"}}
    assert render_chart(utc) != drawn["UTC"], "the axis follows the plan's zone"


def test_export_says_so_when_the_chart_cannot_be_written(
    recorded_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WARROOM_DATABASE_URL", recorded_url)
    missing = tmp_path / "no-such-dir" / "chart.png"
    assert main(["export", "r1", "--chart", str(missing)]) == 1
    output = capsys.readouterr()
    assert output.err.startswith(f"cannot write the chart to {missing}: No such file or directory"), output.err
    assert output.out == ""
