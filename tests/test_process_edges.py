"""The edges of the real program: start with Slack down or a token refused, Socket Mode that cannot connect,
stopping, configuration and database errors, and what it logs — each through `warroom run` as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from bot.app import Runtime
from bot.ids import ActionId
from tests.bot_process import BotProcess, free_port, running_bot
from tests.conftest import ROOT, SIGNING_SECRET, T0, Clock, SlackDriver, plan_text, sign
from tests.fake_slack import FakeSlack, OutageKind
from tests.test_gonogo_handlers import click

SOCKET_MODE = {"SLACK_APP_TOKEN": "xapp-e2e"}


def _plan(tmp_path: Path) -> Path:
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text())
    return plan


def _db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'edges.db'}"


async def _exit_of(fake: FakeSlack, tmp_path: Path, extra_env: dict[str, str], within: float = 20) -> tuple[int, str]:
    """Run `warroom run` until it stops by itself; its exit code and everything it wrote."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))},
        "SLACK_BOT_TOKEN": "xoxb-e2e",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "WARROOM_DATABASE_URL": _db(tmp_path),
        "WARROOM_HOST": "127.0.0.1",
        "WARROOM_PORT": str(free_port()),
        **extra_env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", str(_plan(tmp_path)), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        pytest.fail(f"warroom run did not stop within {within}s:\n{out.decode(errors='replace')}")
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def _command(session: aiohttp.ClientSession, bot: BotProcess, fake: FakeSlack, command: str, text: str) -> int:
    form = {
        "command": command, "text": text, "user_id": "U0DBA", "channel_id": "C0WAR", "channel_name": "war",
        "team_id": "T111", "response_url": fake.webhook_url, "trigger_id": "1",
    }  # fmt: skip
    body = urlencode(form)
    timeout = aiohttp.ClientTimeout(total=15)
    async with session.post(f"{bot.base}/slack/events", data=body, headers=sign(body), timeout=timeout) as response:
        return response.status


# --- 1. the first command after start, and a token Slack refuses -------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "reset", "429", "hang"])
async def test_first_command_is_answered_while_auth_test_fails(
    fake_slack: FakeSlack, tmp_path: Path, kind: OutageKind
) -> None:
    fake_slack.method_outage("auth.test", kind, retry_after=30)
    log = tmp_path / "warroom.log"
    async with running_bot(fake_slack, _plan(tmp_path), _db(tmp_path), log) as bot, aiohttp.ClientSession() as s:
        assert await _command(s, bot, fake_slack, "/issue", "high api 5xx errors on /appointments") == 200
        reply = (await fake_slack.wait_for("respond", 1, within=10))[0]
        assert "#1" in reply["text"], reply
        await fake_slack.wait_until(lambda: any("ISSUE" in str(p.get("blocks")) for p in fake_slack.posts()), 10)
        lines = [line for line in bot.output().splitlines() if "auth.test" in line]
        assert len(lines) == 1 and "Slack did not answer" in lines[0], bot.output()
        fake_slack.restore("auth.test")
        await bot.wait_for_output("Slack answered auth.test", within=20)
    assert "Traceback" not in bot.output()


@pytest.mark.parametrize("error", ["invalid_auth", "not_authed", "account_inactive", "token_revoked"])
@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_a_rejected_bot_token_stops_the_program_naming_it(
    fake_slack: FakeSlack, tmp_path: Path, error: str, mode: str
) -> None:
    fake_slack.fail["auth.test"] = [(200, {"ok": False, "error": error})]
    code, output = await _exit_of(fake_slack, tmp_path, SOCKET_MODE if mode == "socket" else {})
    assert code == 2, output
    lines = [line for line in output.splitlines() if "SLACK_BOT_TOKEN" in line]
    assert len(lines) == 1 and error in lines[0], output
    assert "Traceback" not in output and "running" not in output, output
    assert not fake_slack.of("apps.connections.open"), "connected with a token Slack refused"


@pytest.mark.parametrize("error", ["invalid_auth", "not_authed", "token_revoked"])
async def test_a_rejected_app_token_stops_socket_mode_naming_it(
    fake_slack: FakeSlack, tmp_path: Path, error: str
) -> None:
    fake_slack.fail["apps.connections.open"] = [(200, {"ok": False, "error": error})]
    code, output = await _exit_of(fake_slack, tmp_path, SOCKET_MODE)
    assert code == 2, output
    lines = [line for line in output.splitlines() if "SLACK_APP_TOKEN" in line]
    assert len(lines) == 1 and error in lines[0], output
    assert "Traceback" not in output, output


# --- 2. Socket Mode never holds the rest hostage -------------------------------------------------------------


def _plan_with_announcement_in(tmp_path: Path, seconds: int, text: str) -> Path:
    """The test plan plus an announcement due `seconds` from now (T0 is days ahead)."""
    before_t0 = int((T0 - datetime.now(UTC)).total_seconds()) - seconds
    added = f'  - {{id: soon, at: -{before_t0}s, channel: war_room, text: "{text}"}}\n'
    plan = tmp_path / "plan.yml"
    plan.write_text(plan_text().replace("announcements:\n", "announcements:\n" + added))
    return plan


async def test_socket_mode_serves_health_posts_and_stops_while_the_socket_cannot_connect(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    fake_slack.method_outage("apps.connections.open", "500")
    plan = _plan_with_announcement_in(tmp_path, 4, "Due while the socket is down")
    log = tmp_path / "warroom.log"
    async with (
        running_bot(fake_slack, plan, _db(tmp_path), log, extra_env=SOCKET_MODE) as bot,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"{bot.base}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["socket"] == "reconnecting"
        async with session.get(f"{bot.base}/metrics") as response:
            assert response.status == 200 and "warroom_overdue" in await response.text()
        await fake_slack.wait_until(
            lambda: any(p.get("text") == "Due while the socket is down" for p in fake_slack.posts()), 20
        )
        await bot.wait_for_output("Socket Mode could not connect (attempt 2", within=30)
        bot.process.terminate()
        await asyncio.wait_for(bot.process.wait(), 5)
    output = bot.output()
    assert "Traceback" not in output, output
    retries = [line for line in output.splitlines() if "connect" in line.lower()]
    assert all("Socket Mode could not connect" in line for line in retries), output
    assert fake_slack.of("apps.connections.open:outage")


# --- 3. SIGTERM hands back what it claimed -------------------------------------------------------------------


@pytest.mark.parametrize("reached_slack", [False, True])
async def test_sigterm_during_a_send_hands_the_message_back_for_a_prompt_restart(
    fake_slack: FakeSlack, tmp_path: Path, reached_slack: bool
) -> None:
    text = "Claimed when the bot was stopped"
    plan = _plan_with_announcement_in(tmp_path, 3, text)
    fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"chat.postMessage"})
    database_url = _db(tmp_path)
    async with running_bot(fake_slack, plan, database_url, tmp_path / "first.log") as first:
        await fake_slack.wait_until(lambda: "chat.postMessage" in fake_slack.waiting, 20)
        first.process.terminate()
        await asyncio.wait_for(first.process.wait(), 12)
    assert "Traceback" not in first.output(), first.output()
    assert "CancelledError" not in first.output(), first.output()

    if reached_slack:  # the post Slack was still answering when the bot stopped went out after all
        fake_slack.hold.set()
        await fake_slack.wait_until(lambda: len(fake_slack.posts()) == 1, 5)
    else:  # it never arrived: Slack drops it
        fake_slack.held = frozenset()
    async with running_bot(fake_slack, plan, database_url, tmp_path / "second.log") as second:
        # well within the 60 s after which an unconfirmed claim would be taken over anyway
        if reached_slack:
            await second.wait_for_output("was already posted", within=20)
        else:
            await fake_slack.wait_until(lambda: any(p.get("text") == text for p in fake_slack.posts()), 20)
        await asyncio.sleep(1)  # anything sent twice would arrive now
    assert [p.get("text") for p in fake_slack.posts()].count(text) == 1
    assert "Traceback" not in second.output(), second.output()
    fake_slack.hold.set()  # ends the abandoned request, so the fake can stop


# --- 4. configuration errors are one line, exit 2 ----------------------------------------------------------------


def _run_cli(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))}
    full_env.update(
        {
            "SLACK_BOT_TOKEN": "xoxb-e2e",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": "http://127.0.0.1:9/api/",  # never reached: the checks come first
            "WARROOM_HOST": "127.0.0.1",
            "WARROOM_PORT": str(free_port()),
            "WARROOM_DATABASE_URL": _db(tmp_path),
            **env,
        }
    )
    plan = _plan(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", str(plan)],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=60,
    )  # fmt: skip


def _assert_one_line(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert output.count("\n") == 1 and "Traceback" not in output, output
    for text in expected:
        assert text in output, output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:{port}/test", ("WARROOM_DATABASE_URL", "cannot connect", "127.")),
        ("postgresql+asyncpg://postgres@no-such-host.invalid/test", ("WARROOM_DATABASE_URL", "no-such-host.invalid")),
        ("sqlite+aiosqlite:///{tmp}/missing/warroom.db", ("WARROOM_DATABASE_URL", "missing", "does not exist")),
        ("sqlite+aiosqlite:////proc/warroom.db", ("WARROOM_DATABASE_URL", "/proc", "cannot write")),
        ("sqlite+aiosqlite:///:memory:", ("WARROOM_DATABASE_URL", "in-memory")),
        ("sqlite+aiosqlite://", ("WARROOM_DATABASE_URL", "in-memory")),
        ("sqlite+aiosqlite://warroom.db", ("WARROOM_DATABASE_URL", "three slashes")),
        ("postgresql+asyncpg://u@h:notaport/db", ("WARROOM_DATABASE_URL", "malformed")),
    ],
)
def test_a_database_setting_that_cannot_work_is_one_line_exit_2(
    tmp_path: Path, url: str, expected: tuple[str, ...]
) -> None:
    url = url.format(port=free_port(), tmp=tmp_path)
    result = _run_cli(tmp_path, WARROOM_DATABASE_URL=url)
    _assert_one_line(result, *expected)


def test_a_request_inbox_path_that_cannot_be_a_database_is_one_line_exit_2(tmp_path: Path) -> None:
    # on SQLite the inbox is a file of its own beside the database: edges.db → edges.inbox.db
    (tmp_path / "edges.inbox.db").mkdir()
    result = _run_cli(tmp_path)
    _assert_one_line(result, "WARROOM_DATABASE_URL", str(tmp_path / "edges.inbox.db"), "request inbox")
    assert not (tmp_path / "edges.db").exists(), "migrated before checking"


def test_a_postgres_database_that_does_not_exist_is_one_line_exit_2(tmp_path: Path) -> None:
    base = os.environ.get("WARROOM_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("WARROOM_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    url = base.rsplit("/", 1)[0] + "/warroom_no_such_database"
    _assert_one_line(_run_cli(tmp_path, WARROOM_DATABASE_URL=url), "WARROOM_DATABASE_URL", "does not exist")


def test_a_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_cli(tmp_path, WARROOM_PORT=str(port))
    _assert_one_line(result, "WARROOM_PORT", str(port), "in use")
    assert not Path(_db(tmp_path).removeprefix("sqlite+aiosqlite:///")).exists(), "migrated before checking"


@pytest.mark.parametrize("host", ["no-such-host.invalid", "256.1.1.1", "192.0.2.1"])
def test_a_bad_listen_host_is_one_line_exit_2(tmp_path: Path, host: str) -> None:
    _assert_one_line(_run_cli(tmp_path, WARROOM_HOST=host), "WARROOM_HOST", host)


# --- 5. a failing database is said, not hidden -----------------------------------------------------------------


class DiskFull:
    """SQLite's `max_page_count` on every connection: while `full`, a write that needs a page fails with
    SQLITE_FULL ("database or disk is full"), as on a full disk."""

    def __init__(self, engine: Any) -> None:
        self.full = False
        self.engine = engine
        event.listen(engine.sync_engine, "connect", self._limit)

    def _limit(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count={pages if self.full else 1_000_000}")
        cursor.close()

    async def set(self, full: bool) -> None:
        if full:  # a table to take up the free pages SQLite keeps for reuse, which a full disk would not have
            async with self.engine.begin() as connection:
                await connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS test_filler (b BLOB)")
        self.full = full
        await self.engine.dispose()  # every connection from now on is opened with the new limit
        if full:  # one page a transaction: SQLite rolls back the whole transaction that found the disk full
            with contextlib.suppress(OperationalError):
                for _ in range(10_000):
                    async with self.engine.begin() as connection:
                        await connection.exec_driver_sql("INSERT INTO test_filler VALUES (randomblob(3000))")
        else:
            async with self.engine.begin() as connection:
                await connection.exec_driver_sql("DELETE FROM test_filler")


async def test_a_full_disk_is_said_and_healthz_fails_until_writes_work_again(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    disk = DiskFull(slack.runtime.engine)
    await slack.command("/phase", "done pre-deployment")
    posted = len(fake_slack.posts())
    assert posted >= 1
    await disk.set(full=True)

    # reports of a few kB each: the free space left in the database's pages runs out within a few
    for attempt in range(1, 30):
        reply = await slack.command("/issue", f"low api report {attempt} " + "5xx errors on /appointments " * 130)
        if not reply["text"].startswith("Issue #"):
            break
    saved = attempt - 1
    assert "could not save" in reply["text"] and "nothing was changed" in reply["text"], reply
    assert "database or disk is full" in reply["text"]
    assert "Something went wrong" not in reply["text"]
    health = await slack.client.get("/healthz")
    assert health.status == 503 and "cannot save" in (await health.json())["status"]
    causes = [r for r in caplog.records if "could not save" in r.getMessage()]
    assert causes and all(r.exc_info is None for r in causes), "the cause is one line, not a traceback"

    await disk.set(full=False)
    reply = await slack.command("/issue", "high api 5xx errors on /appointments")
    assert f"#{saved + 1} " in reply["text"], reply  # the refused report took no number
    assert (await slack.client.get("/healthz")).status == 200
    await slack.runtime.dispatcher.run_due()
    texts = [str(p.get("blocks")) for p in fake_slack.posts()]
    assert len(texts) == len(set(texts)), "a message was posted twice"
    cards = [t for t in texts if "ISSUE DETECTED" in t]
    assert len(cards) == saved + 1, "an issue card is missing"
    assert not any(f"report {saved + 1} " in t for t in texts), "the refused report was posted"


async def test_an_inbox_that_cannot_record_is_said_in_the_ack_and_healthz_fails_until_it_can(
    slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    disk = DiskFull(slack.runtime.inbox_engine)  # on SQLite the inbox is a file of its own
    await slack.command("/issue", "low api recorded before the disk filled up")
    await disk.set(full=True)

    async def issue(attempt: int) -> tuple[int, str]:
        form = {
            "command": "/issue", "text": f"low api report {attempt} " + "x" * 1500, "user_id": "U0RM",
            "channel_id": "C0WAR", "channel_name": "deployment-war-room", "team_id": "T111",
            "response_url": fake_slack.webhook_url, "trigger_id": f"7.{attempt}.full",
        }  # fmt: skip
        body = urlencode(form)
        response = await slack.client.post("/slack/events", data=body, headers=sign(body))
        return response.status, await response.text()

    for attempt in range(1, 100):  # the inbox's free pages run out within a few requests
        status, answer = await issue(attempt)
        if status != 200 or answer:
            break
        await slack.fake.wait_for("respond", attempt + 1)
    assert status == 200, answer  # an honest answer in the ack, not a failed dispatch
    reply = json.loads(answer)
    assert reply["response_type"] == "ephemeral"
    assert "could not save" in reply["text"] and "nothing was changed" in reply["text"], reply
    assert "database or disk is full" in reply["text"]
    health = await slack.client.get("/healthz")
    assert health.status == 503 and "cannot save" in (await health.json())["status"]
    before = len(slack.fake.responses())
    vote = {**click(fake_slack, ActionId.VOTE_GO, "U0RM"), "message": {"text": "x" * 3000}}  # the card clicked
    assert await slack.action(vote) == ""
    [answer] = (await slack.fake.wait_for("respond", before + 1))[before:]  # a click's ack shows nothing
    assert "could not save" in answer["text"] and answer["response_type"] == "ephemeral", answer
    causes = [r for r in caplog.records if "could not save" in r.getMessage()]
    assert causes and all(r.exc_info is None for r in causes), "the cause is one line, not a traceback"
    await slack.runtime.settle()
    saved = len((await slack.runtime.service.get("r1")).issues)
    assert saved == attempt, "the refused report was applied"

    await disk.set(full=False)
    assert (await issue(1000))[0] == 200
    await slack.fake.wait_for("respond", attempt + 1)
    assert (await slack.client.get("/healthz")).status == 200
    assert len((await slack.runtime.service.get("r1")).issues) == saved + 1


# --- 6. quiet, honest logs at INFO ---------------------------------------------------------------------------

OWN_LOGGERS = ("bot.", "schedules.", "handlers.", "storage.", "warroom:")
NOISE = (
    "will be unused", "will be ignored", "setup plugin", "Context impl", "Will assume", "Added job",
    "Running job", "executed successfully", "maximum number of running instances", "Traceback",
)  # fmt: skip


async def test_a_run_logs_at_info_only_its_own_lines(fake_slack: FakeSlack, tmp_path: Path) -> None:
    text = "Posted during the quiet run"
    plan = _plan_with_announcement_in(tmp_path, 3, text)
    log = tmp_path / "warroom.log"
    async with running_bot(fake_slack, plan, _db(tmp_path), log) as bot, aiohttp.ClientSession() as session:
        assert await _command(session, bot, fake_slack, "/phase", "done pre-deployment") == 200
        await fake_slack.wait_for("respond", 1, within=10)
        await fake_slack.wait_until(lambda: any(p.get("text") == text for p in fake_slack.posts()), 20)
    lines = bot.output().splitlines()
    assert any("warroom is running (HTTP mode" in line for line in lines), lines
    for noise in NOISE:
        assert not any(noise in line for line in lines), (noise, lines)
    for line in lines:
        name = line.split(" ", 3)[3] if line.count(" ") >= 3 else line
        assert name.startswith(OWN_LOGGERS), line


async def test_a_timer_job_hands_its_pass_over_so_it_never_overlaps_itself(
    runtime: Runtime, fake_slack: FakeSlack, clock: Clock
) -> None:
    clock.set(T0 - timedelta(hours=2))  # the war-room assembly is due
    fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"chat.postMessage"})
    await runtime.timekeeper.start(deliver=False)
    sweep = runtime.timekeeper.scheduler.get_job("sweep").func
    await asyncio.wait_for(sweep(), 2)  # a pass starts and waits for Slack…
    await fake_slack.wait_until(lambda: "chat.postMessage" in fake_slack.waiting)
    await asyncio.wait_for(sweep(), 2)  # …the next tick returns at once instead of running beside it
    fake_slack.hold.set()
    await runtime.settle()
    await runtime.timekeeper.finish()
    assert len(fake_slack.posts()) == 1


async def test_socket_mode_connects_once_slack_lets_it_and_serves_commands(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    fake_slack.method_outage("apps.connections.open", "reset")  # until the bot has tried once, however slow its start
    fake_slack.method_outage("auth.test", "500")  # and the token could not be checked at start
    log = tmp_path / "warroom.log"
    async with (
        running_bot(fake_slack, _plan(tmp_path), _db(tmp_path), log, extra_env=SOCKET_MODE) as bot,
        aiohttp.ClientSession() as session,
    ):
        await fake_slack.wait_for("apps.connections.open:outage", 1, within=30)
        fake_slack.restore("apps.connections.open")
        await fake_slack.wait_for("socket.connected", 1, within=20)
        await bot.wait_for_output("Socket Mode connected", within=10)
        async with session.get(f"{bot.base}/healthz") as response:
            assert response.status == 200 and (await response.json())["socket"] == "connected"
        command = {
            "command": "/phase", "text": "done pre-deployment", "user_id": "U0RM", "channel_id": "C0WAR",
            "team_id": "T111", "response_url": fake_slack.webhook_url, "trigger_id": "1",
        }  # fmt: skip
        await fake_slack.send_envelope("e-1", "slash_commands", command)
        acks = await fake_slack.wait_for("socket.ack", 1, within=10)
        assert acks[0]["envelope_id"] == "e-1"
        reply = (await fake_slack.wait_for("respond", 1, within=10))[0]
        assert "Pre-Deployment: done" in reply["text"], reply
    assert "Socket Mode could not connect (attempt 1" in bot.output()
    assert "Traceback" not in bot.output()
    for line in bot.output().splitlines():  # Bolt's session bookkeeping shows only at DEBUG, as over HTTP
        assert line.split(" ", 3)[-1].startswith(OWN_LOGGERS), line
