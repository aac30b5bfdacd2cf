"""The `warroom` command line: check, preview, export, and settings errors, all without tracebacks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import ROOT, plan_text

EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
    )


def test_check_accepts_every_example() -> None:
    result = run("check", *map(str, EXAMPLES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok") == len(EXAMPLES)


def test_check_lists_every_problem_as_file_line_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        plan_text().replace("owner: dba}", "owner: dbas}").replace("timezone: UTC", "timezone: Nowhere/Land")
    )
    result = run("check", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{bad}:") and line.split(":")[1].isdigit() for line in lines)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("!!timestamp nope", "'nope' is not a valid timestamp: write it without the `!!timestamp` tag"),
        ("!!int abc", "'abc' is not a valid int: write it without the `!!int` tag"),
        ("!!float x1", "'x1' is not a valid float"),
    ],
)
def test_check_of_a_value_its_yaml_tag_does_not_fit_is_one_clear_line(
    tmp_path: Path, value: str, expected: str
) -> None:
    plan = tmp_path / "tagged.yml"
    plan.write_text(f"release:\n  id: r1\n  name: {value}\n")
    result = run("check", str(plan))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{plan}:3: {expected}" in result.stdout + result.stderr


def test_check_of_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "missing.yml"))
    assert result.returncode == 1 and "cannot read the plan" in result.stderr and "Traceback" not in result.stderr


def test_preview_prints_every_message_in_time_order_with_both_zones() -> None:
    result = run("preview", str(ROOT / "examples" / "interactive-examples.yml"))
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if line.startswith("=== ")]
    # 7 announcements, the first status update, the vote, its reminder, the decision point, the sign-off table
    # and 3 follow-ups
    assert len(heads) == 15
    assert heads == sorted(heads)
    assert "2025-07-26 00:00 UTC | 2025-07-25 20:00 EDT" in result.stdout
    assert "(8 updates); the first:" in result.stdout
    assert "DEPLOYMENT STATUS UPDATE" in result.stdout


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SLACK_BOT_TOKEN": "nope"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "WARROOM_PORT": "eighty"}, "WARROOM_PORT"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "WARROOM_DATABASE_URL": "mysql://x"}, "WARROOM_DATABASE_URL"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_API_URL": "slack.com"}, "SLACK_API_URL"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
        ({}, "SLACK_BOT_TOKEN"),
    ],
)
def test_run_with_a_bad_setting_stops_with_one_line_naming_it(env: dict[str, str], variable: str) -> None:
    result = run("run", str(EXAMPLES[0]), env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and variable in result.stderr
    assert "Traceback" not in result.stderr


def test_export_reports_a_release_from_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.plan import parse_plan
    from bot.service import LoadedPlan, Service
    from storage.db import create_engine, migrate, sessionmaker
    from tests.conftest import T0

    url = f"sqlite+aiosqlite:///{tmp_path / 'export.db'}"

    async def seed() -> None:
        engine = create_engine(url)
        await migrate(engine)
        service = Service(sessions=sessionmaker(engine), clock=lambda: T0)
        await service.load(LoadedPlan(parse_plan(plan_text(), "t.yml"), "", "t.yml"))
        await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("WARROOM_DATABASE_URL", url)
    assert main(["export", "r1", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["release"]["id"] == "r1" and len(data["phases"]) == 4
    assert data["timeline"][0]["kind"] == "release.loaded"
    assert main(["export", "r1"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("# Test Platform v1.2.3") and "## Phases: plan vs actual" in markdown
    assert main(["export", "nope"]) == 1
    assert "no release 'nope'" in capsys.readouterr().err


def test_every_package_of_the_program_is_installed() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tops = ("bot", "handlers", "schedules", "messages", "storage")
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in tops
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), "packages `pip install .` would leave out"
