"""End to end: a real Alertmanager delivers a firing, then a resolved alert to a real `warroom run`; prints
what Alertmanager sent and what the war room received (the fake Slack's recorded calls).

    python scripts/alertmanager_e2e.py

Needs the `prometheus-alertmanager` binary (Debian package of that name).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.alert_payloads import TOKEN, alert_plan_text  # noqa: E402
from tests.bot_process import free_port, running_bot  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402

CONFIG = """
route: {receiver: warroom, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
receivers:
  - name: warroom
    webhook_configs:
      - url: %s/hooks/alertmanager
        send_resolved: true
        http_config: {authorization: {type: Bearer, credentials: %s}}
"""


async def wait(condition: Any, within: float = 20) -> None:
    for _ in range(int(within * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError


def show(calls: list[Any]) -> None:
    for call in calls:
        if call.method not in {"chat.postMessage", "chat.update"}:
            continue
        args = call.args
        print(f"  {call.method} channel={args.get('channel')} thread_ts={args.get('thread_ts', '-')}")
        print(f"    text: {args.get('text')}")
        for block in json.loads(args["blocks"]) if isinstance(args.get("blocks"), str) else args.get("blocks") or []:
            inner = block.get("text") or {}
            if isinstance(inner, dict) and inner.get("text"):
                print(f"    [{block['type']}] {inner['text']}")
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    print(f"    [button] {element['text']['text']} ({element['action_id']} = {element['value']})")
                elif element.get("text"):
                    print(f"    [{block['type']}] {element['text']}")


async def main() -> None:
    binary = shutil.which("prometheus-alertmanager")
    if binary is None:
        sys.exit("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    fake = await FakeSlack(channels={"deployment-war-room": "C0WAR"}).start()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        now = datetime.now(UTC).replace(microsecond=0)
        plan = tmp / "plan.yml"
        plan.write_text(alert_plan_text(start=now - timedelta(minutes=10)))
        database = f"sqlite+aiosqlite:///{tmp / 'warroom.db'}"
        env = {"WARROOM_ALERTMANAGER_TOKEN": TOKEN}
        async with running_bot(fake, plan, database, tmp / "bot.log", extra_env=env) as bot:
            config = tmp / "alertmanager.yml"
            config.write_text(CONFIG % (bot.base, TOKEN))
            port = free_port()
            manager = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp / 'am'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            api = f"http://127.0.0.1:{port}/api/v2/alerts"
            try:
                async with aiohttp.ClientSession() as session:
                    for _ in range(100):
                        try:
                            async with session.get(f"http://127.0.0.1:{port}/-/ready") as ready:
                                if ready.status == 200:
                                    break
                        except aiohttp.ClientError:
                            pass
                        await asyncio.sleep(0.1)
                    alert = {
                        "labels": {"alertname": "HighErrorRate", "region": "region1", "job": "api"},
                        "annotations": {
                            "summary": "5xx ratio above 1% on /appointments for 5 minutes",
                            "description": "upstream connect error or disconnect/reset before headers",
                            "value": "2.3%",
                        },
                        "startsAt": (now - timedelta(minutes=5)).isoformat(),
                        "generatorURL": "http://prometheus:9090/graph?g0.expr=job:http_5xx:ratio5m",
                    }
                    await asyncio.sleep(3)  # what the start itself posts (the vote, notices) is not shown
                    seen = len(fake.calls)
                    print(f"POST {api} (firing)")
                    async with session.post(api, json=[alert]) as response:
                        assert response.status == 200
                    await wait(lambda: any("ISSUE DETECTED" in c.args.get("text", "") for c in fake.calls))
                    await asyncio.sleep(1)
                    print("\nSlack received:")
                    show(list(fake.calls)[seen:])
                    seen = len(fake.calls)
                    ended = {**alert, "endsAt": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}
                    print(f"\nPOST {api} (endsAt in the past: resolved)")
                    async with session.post(api, json=[ended]) as response:
                        assert response.status == 200
                    await wait(lambda: any("resolved in Alertmanager" in c.args.get("text", "") for c in fake.calls))
                    await asyncio.sleep(1)
                    print("\nSlack received:")
                    show(list(fake.calls)[seen:])
                print("\nThe bot logged:")
                for line in bot.output().splitlines():
                    if "alertmanager" in line.lower() or "hooks" in line:
                        print(f"  {line}")
            finally:
                manager.terminate()
                await manager.wait()
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
