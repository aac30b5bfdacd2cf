"""A real Alertmanager (Debian's prometheus-alertmanager) delivers to the bot's hook: alerts are pushed to its
API and it sends them on — firing, repeated, grouped and resolved — with the bearer token of its
`http_config.authorization`. Its timers are set to a second, so each test takes a few seconds."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import Runtime, build_runtime, web_app
from bot.domain import IssueStatus
from bot.plan import parse_plan
from bot.service import LoadedPlan
from messages import blocks as bk
from storage import repo
from tests.alert_payloads import TOKEN, alert_plan_text
from tests.bot_process import free_port
from tests.conftest import FAST_PACE, T0, Clock, make_settings
from tests.fake_slack import FakeSlack

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="no Alertmanager binary (install the Debian package prometheus-alertmanager; .ci/run does)",
)

CONFIG = """
route:
  receiver: warroom
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: warroom
    webhook_configs:
      - url: {url}
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: {token}}}
"""


@dataclass
class Deliveries:
    """What Alertmanager sent to the hook, as the hook answered it."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def of(self, status: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b.get("status") == status]


@dataclass
class Alertmanager:
    api: str
    process: asyncio.subprocess.Process
    log: Path

    async def push(self, *alerts: dict[str, Any]) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.api}/api/v2/alerts", json=list(alerts)) as response,
        ):
            assert response.status == 200, await response.text()


def pushed(name: str, *, ends: datetime | None = None, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus pushes it to Alertmanager's API (startsAt now; endsAt in the past resolves it)."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} above its threshold", "description": "seen by the test"},
        "startsAt": (now - timedelta(seconds=30)).isoformat(),
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={name}",
    }
    if ends is not None:
        body["endsAt"] = ends.isoformat()
    return body


@pytest.fixture
async def bot(fake_slack: FakeSlack, database_url: str, clock: Clock) -> AsyncIterator[tuple[Runtime, str, Deliveries]]:
    """The bot's HTTP app on a real port, with every delivery to the hook recorded."""
    clock.set(T0 + timedelta(minutes=40))
    rt = await build_runtime(
        make_settings(fake_slack, database_url, WARROOM_ALERTMANAGER_TOKEN=TOKEN), clock=clock, pace=FAST_PACE
    )
    text = alert_plan_text()
    await rt.service.load(LoadedPlan(parse_plan(text, "alerts.yml"), text, "alerts.yml"))
    seen = Deliveries()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/hooks/alertmanager":
            seen.bodies.append(json.loads(await request.read()))
        response: web.StreamResponse = await handler(request)
        if request.path == "/hooks/alertmanager":
            seen.statuses.append(response.status)
        return response

    application = web_app(rt, serve_slack=True)
    application.middlewares.append(record)
    server = TestServer(application, host="127.0.0.1", port=free_port())
    await server.start_server()
    yield rt, str(server.make_url("/hooks/alertmanager")), seen
    await server.close()
    await rt.close()


@pytest.fixture
async def alertmanager(bot: tuple[Runtime, str, Deliveries], tmp_path: Path) -> AsyncIterator[Alertmanager]:
    assert BINARY is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=bot[1], token=TOKEN))
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            BINARY,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
            stdout=sink,
            stderr=sink,
        )
    manager = Alertmanager(f"http://127.0.0.1:{port}", process, log)
    try:
        await _ready(manager)
        yield manager
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def _ready(manager: Alertmanager, within: float = 15) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(within * 10)):
            assert manager.process.returncode is None, manager.log.read_text()
            try:
                async with session.get(f"{manager.api}/-/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"Alertmanager did not become ready:\n{manager.log.read_text()}")


async def until(condition: Any, what: str, manager: Alertmanager, within: float = 15) -> None:
    for _ in range(int(within * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{what} within {within}s; Alertmanager said:\n{manager.log.read_text()[-3000:]}")


async def test_alertmanager_delivers_firing_repeated_and_resolved_alerts_to_one_issue(
    bot: tuple[Runtime, str, Deliveries], alertmanager: Alertmanager, fake_slack: FakeSlack
) -> None:
    runtime, _, seen = bot
    firing = pushed("HighErrorRate", region="region1")
    await alertmanager.push(firing)
    await until(lambda: len(seen.of("firing")) >= 1, "no firing delivery", alertmanager)
    await alertmanager.push(firing)  # Prometheus re-sends a firing alert at every evaluation
    await until(lambda: len(seen.of("firing")) >= 3, "no repeated delivery (repeat_interval 1s)", alertmanager)
    await runtime.settle()
    assert set(seen.statuses) == {200}
    assert seen.bodies[0]["version"] == "4" and seen.bodies[0]["receiver"] == "warroom"
    release = await runtime.service.get("r1")
    assert [i.number for i in release.issues] == [1], "repeats update the issue, never a second one"
    cards = [p for p in fake_slack.posts("C0WAR") if p["text"].startswith("ISSUE DETECTED #1")]
    assert len(cards) == 1
    bk.validate(cards[0]["blocks"])

    await alertmanager.push(pushed("HighErrorRate", region="region1", ends=datetime.now(UTC) - timedelta(seconds=1)))
    await until(lambda: seen.of("resolved"), "no resolved delivery", alertmanager)
    await runtime.settle()
    await until(
        lambda: any("resolved in Alertmanager" in p["text"] for p in fake_slack.posts("C0WAR")),
        "no resolved line in the war room",
        alertmanager,
    )
    release = await runtime.service.get("r1")
    assert release.issue(1).status is IssueStatus.OPEN  # type: ignore[union-attr]
    assert [a.status for a in release.alerts] == ["resolved"]
    async with runtime.service.sessions() as session:
        timeline = await repo.get_timeline(session=session, release_id="r1")
    kinds = [e.kind for e in timeline if e.kind.startswith("alert.")]
    assert kinds[0] == "alert.firing" and kinds[-1] == "alert.resolved" and kinds.count("alert.firing") == 1


async def test_alertmanager_groups_two_alerts_into_one_delivery_and_each_gets_its_issue(
    bot: tuple[Runtime, str, Deliveries], alertmanager: Alertmanager, fake_slack: FakeSlack
) -> None:
    runtime, _, seen = bot
    await alertmanager.push(pushed("HighErrorRate", region="region1"), pushed("HighErrorRate", region="region2"))
    await until(lambda: any(len(b["alerts"]) == 2 for b in seen.bodies), "no grouped delivery", alertmanager)
    await until(lambda: len(seen.bodies) >= 3, "no repeated grouped delivery", alertmanager)
    await runtime.settle()
    release = await runtime.service.get("r1")
    assert sorted((i.number, i.region) for i in release.issues) == [(1, "region1"), (2, "region2")]
    assert len({a.fingerprint for a in release.alerts}) == 2
    fingerprints = {a["fingerprint"] for b in seen.bodies for a in b["alerts"]}
    assert fingerprints == {a.fingerprint for a in release.alerts}, "linked by Alertmanager's own fingerprints"
