"""Each command imports what it needs and no more: what is imported only when used must stay so, or start-up
and `warroom check` slow down again without any test noticing. Real processes, their `sys.modules` at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.bot_process import running_bot
from tests.conftest import ROOT, plan_text
from tests.fake_slack import FakeSlack

PROBE = ROOT / "tests" / "modules_probe"
EXAMPLE = ROOT / "examples" / "unifiedhealth-golive.yml"

FRAMEWORKS = ("sqlalchemy", "aiosqlite", "aiohttp", "slack_bolt", "alembic", "apscheduler", "prometheus_client")
"""What serving needs: the database, Slack, the HTTP server, migrations, the timer, the metrics."""
NEVER_AT_START = (
    "alembic",  # only when a database is behind the newest migration
    "sqlalchemy.dialects.postgresql",  # only on PostgreSQL
    "asyncpg",
    "slack_sdk.socket_mode",  # only in Socket Mode
    "slack_bolt.adapter.socket_mode",
    "matplotlib",  # only to draw a chart (`export --chart`, `/release report`)
    "jsonschema",  # the tests' only
)


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of `names` (packages and their submodules) are among `modules`."""
    return sorted(n for n in names if any(m == n or m.startswith(f"{n}.") for m in modules))


def _modules_after(code: str, tmp_path: Path) -> set[str]:
    out = tmp_path / "modules.txt"
    env = {**os.environ, "PYTHONPATH": str(PROBE), "WARROOM_TEST_MODULES": str(out)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(out.read_text().split())


def test_importing_the_cli_imports_no_framework(tmp_path: Path) -> None:
    modules = _modules_after("import bot.cli", tmp_path)
    assert "bot.cli" in modules
    assert _loaded(modules, (*FRAMEWORKS, "pydantic", "jinja2", "yaml", "slack_sdk", "storage", "handlers")) == []


def test_check_and_preview_import_no_database_slack_client_or_http_server(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom bot.cli import main\n"
        f"assert main(['check', {str(EXAMPLE)!r}]) == 0\nassert main(['preview', {str(EXAMPLE)!r}]) == 0\n"
    )
    modules = _modules_after(code, tmp_path)
    assert {"bot.validate", "messages.render", "schedules.preview"} <= modules  # it checked and previewed
    assert _loaded(modules, (*FRAMEWORKS, *NEVER_AT_START, "storage", "handlers", "bot.app")) == []


async def test_run_in_http_mode_on_sqlite_imports_what_serving_needs_only(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    url = f"sqlite+aiosqlite:///{tmp_path / 'warroom.db'}"
    env = {"PYTHONPATH": str(PROBE)}
    for start in ("a new database", "the database at the newest migration"):
        out = tmp_path / f"modules {start}.txt"
        env["WARROOM_TEST_MODULES"] = str(out)
        async with running_bot(fake_slack, plan, url, tmp_path / "bot.log", extra_env=env):
            pass
        modules = set(out.read_text().split())
        assert _loaded(modules, FRAMEWORKS) == sorted(set(FRAMEWORKS) - {"alembic"}), start
        assert _loaded(modules, NEVER_AT_START) == [], start
